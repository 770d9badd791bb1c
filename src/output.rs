//! Where the start line and the report go: standard output for a text
//! report, otherwise standard error for the start line (scripts wait for
//! it) and the file or standard output for the report.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::report::{json, text, Header, Report};

pub struct Output {
    json: bool,
    /// Opened before tracing starts, so a bad path fails early.
    file: Option<File>,
}

impl Output {
    pub fn new(json: bool, path: Option<&Path>) -> Result<Self> {
        let file = path
            .map(|p| File::create(p).with_context(|| format!("cannot write {}", p.display())))
            .transpose()?;
        Ok(Output { json, file })
    }

    fn report_on_stdout_as_text(&self) -> bool {
        !self.json && self.file.is_none()
    }

    /// Announces that the window has begun.
    pub fn announce(&self, header: &Header) -> Result<()> {
        let lines = text::render_header(header);
        if self.report_on_stdout_as_text() {
            let mut stdout = io::stdout().lock();
            stdout.write_all(lines.as_bytes())?;
            stdout.flush()?;
        } else {
            let start_line = lines.lines().next().unwrap_or_default();
            eprintln!("{start_line}");
        }
        Ok(())
    }

    pub fn write(&mut self, report: &Report) -> Result<()> {
        let rendered = if self.json {
            json::render(report)
        } else if self.file.is_some() {
            text::render(report)
        } else {
            text::render_body(report) // the header is on the terminal already
        };
        let result = match self.file.as_mut() {
            Some(file) => file
                .write_all(rendered.as_bytes())
                .and_then(|_| file.flush()),
            None => {
                let mut stdout = io::stdout().lock();
                let written = stdout
                    .write_all(rendered.as_bytes())
                    .and_then(|_| stdout.flush());
                // A reader that stopped early (`| head`) wanted no more.
                match written {
                    Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    other => other,
                }
            }
        };
        result.context("writing the report failed")
    }
}
