//! --flamegraph: the --folded stacks drawn as an interactive SVG flame
//! graph (the inferno crate, a port of Brendan Gregg's flamegraph.pl).

use std::io::{self, Write};

use inferno::flamegraph::color::{BasicPalette, Palette};
use inferno::flamegraph::{self, Options};

use super::folded::FoldedStacks;

pub fn write(stacks: &FoldedStacks, out: &mut dyn Write) -> io::Result<()> {
    let lines: Vec<String> = stacks.lines().collect();
    let mut options = Options::default();
    options.title = "Time off the CPU by stack".to_string();
    options.subtitle = Some("process; thread; state; user frames; kernel frames".to_string());
    options.count_name = "ns".to_string();
    options.colors = Palette::Basic(BasicPalette::Io);
    // A function keeps its colour from one graph to the next.
    options.hash = true;
    if lines.is_empty() {
        options.subtitle = Some("no time off the CPU was recorded".to_string());
    }
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
}
