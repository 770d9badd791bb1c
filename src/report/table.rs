//! The tables of the text report.

use comfy_table::{presets, CellAlignment, Table};

/// A borderless table, first column left-aligned, the numbers right-aligned.
pub fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.to_vec());
    for column in table.column_iter_mut().skip(1) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    table
}
