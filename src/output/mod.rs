//! Where the start line and the report go: standard output for a text
//! report, otherwise standard error for the start line (scripts wait for
//! it) and the file or standard output for the report.
//!
//! A report file is written beside its destination under a temporary name
//! and renamed over it once complete: a run that fails never destroys what
//! was there, and a symbolic link at that name is replaced, not followed.
//! Devices, pipes and our own descriptors (`/dev/stdout`, `/dev/null`,
//! `/proc/self/fd/N`) are written in place.

mod replacement;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC, SYSFS_MAGIC};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::output::replacement::Replacement;
use crate::report::folded::FoldedStacks;
use crate::report::view::View;
use crate::report::{flamegraph, json, text, Header, Report};

/// Room to batch the report's many small writes.
const BUFFER: usize = 64 << 10;

pub struct Output {
    json: bool,
    /// What the text report shows.
    view: View,
    destination: Destination,
    /// --folded and --flamegraph.
    stack_files: Option<StackFiles>,
}

/// The files of --folded and --flamegraph, written once every window is
/// in, and the stacks of the windows so far.
#[derive(Debug)]
struct StackFiles {
    folded: Option<Destination>,
    flamegraph: Option<Destination>,
    stacks: FoldedStacks,
}

#[derive(Debug)]
enum Destination {
    Stdout,
    /// A device, a pipe, or one of our own descriptors.
    InPlace {
        path: PathBuf,
        file: File,
    },
    /// A file, replaced once the report is in it.
    Replace {
        path: PathBuf,
        temp: Replacement,
    },
}

/// How a report stands among the reports of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// The one window, open from the start line on.
    Only,
    /// The one window of a run with triggers.
    Triggered,
    /// One of several windows: JSON Lines.
    OneOfMany,
}

/// The reader of standard output went away (`| head`): not a failure to
/// report, kernel-delay ends quietly as SIGPIPE ends other tools.
#[derive(Debug)]
pub struct ReaderGone;

impl fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the reader of standard output went away")
    }
}

impl std::error::Error for ReaderGone {}

impl Output {
    /// Checks that the report can be written where asked, before anything
    /// is traced: call it before any file is opened, so that a closed
    /// standard output is not mistaken for one of ours.
    pub fn new(json: bool, view: View, path: Option<&Path>) -> Result<Self> {
        let destination = match path {
            None => {
                if stdout_was_closed() {
                    bail!("standard output is closed: give -o FILE for the report");
                }
                Destination::Stdout
            }
            Some(path) => open(path).with_context(|| format!("cannot write {}", path.display()))?,
        };
        Ok(Output {
            json,
            view,
            destination,
            stack_files: None,
        })
    }

    /// Also writes the windows' off-CPU stacks as collapsed stacks to
    /// `folded`, and as a flame graph to `flamegraph`: checked now, written
    /// at the end.
    pub fn with_stack_files(
        mut self,
        folded: Option<&Path>,
        flamegraph: Option<&Path>,
    ) -> Result<Self> {
        let open_file = |path: Option<&Path>| {
            path.map(|path| open(path).with_context(|| format!("cannot write {}", path.display())))
                .transpose()
        };
        let (folded, flamegraph) = (open_file(folded)?, open_file(flamegraph)?);
        if folded.is_some() || flamegraph.is_some() {
            self.stack_files = Some(StackFiles {
                folded,
                flamegraph,
                stacks: FoldedStacks::default(),
            });
        }
        Ok(self)
    }

    fn report_on_stdout_as_text(&self) -> bool {
        !self.json && matches!(self.destination, Destination::Stdout)
    }

    /// Announces that the window has begun.
    pub fn announce(&self, header: &Header) -> Result<()> {
        let lines = text::render_header(header, None);
        if self.report_on_stdout_as_text() {
            let mut stdout = io::stdout().lock();
            let written = stdout
                .write_all(lines.as_bytes())
                .and_then(|()| stdout.flush());
            on_stdout(written, "the start line")
        } else {
            let start_line = lines.lines().next().unwrap_or_default();
            let mut stderr = io::stderr().lock();
            writeln!(stderr, "{start_line}")
                .context("writing the start line to standard error failed")
        }
    }

    /// Writes one window's report (framed, in text, by the window's
    /// header and end). `layout`: how it stands among the reports.
    pub fn write(
        &mut self,
        report: &Report,
        header: &Header,
        end: &Timestamp,
        layout: Layout,
    ) -> Result<()> {
        let json = self.json;
        // The one window of old opened with the start line, which showed
        // its header already; a triggered or repeated window has its own.
        let header_shown = layout == Layout::Only && self.report_on_stdout_as_text();
        let frame = text::Frame {
            header,
            end: end.wall,
            dumped: time::OffsetDateTime::now_utc(),
            view: &self.view,
        };
        let render = |out: &mut dyn Write| {
            buffered(out, |mut out| match (json, layout) {
                (true, Layout::OneOfMany) => json::write_line(report, &mut out),
                (true, _) => json::write(report, &mut out),
                (false, _) if header_shown => text::write_body(report, &frame, &mut out),
                (false, _) => text::write(report, &frame, &mut out),
            })
        };
        if let Some(files) = self.stack_files.as_mut() {
            files.stacks.add(report);
        }
        self.destination.write("the report", render)
    }

    /// A line about the windows (one skipped): beside the start line.
    pub fn note(&self, line: &str) -> Result<()> {
        if self.report_on_stdout_as_text() {
            let mut stdout = io::stdout().lock();
            on_stdout(
                writeln!(stdout, "{line}").and_then(|()| stdout.flush()),
                "a note",
            )
        } else {
            writeln!(io::stderr().lock(), "{line}").context("writing to standard error failed")
        }
    }

    /// Puts a report file in place, once every report is written, and
    /// writes the stack files.
    pub fn finish(self) -> Result<()> {
        if let Some(files) = self.stack_files {
            files.finish()?;
        }
        self.destination.commit("the report")
    }
}

impl StackFiles {
    fn finish(self) -> Result<()> {
        let StackFiles {
            folded,
            flamegraph,
            stacks,
        } = self;
        if let Some(folded) = folded {
            folded.write("the folded stacks", |out| {
                buffered(out, |out| stacks.write(out))
            })?;
            folded.commit("the folded stacks")?;
        }
        if let Some(graph) = flamegraph {
            graph.write("the flame graph", |out| {
                buffered(out, |out| flamegraph::write(&stacks, out))
            })?;
            graph.commit("the flame graph")?;
        }
        Ok(())
    }
}

/// A file written as the run goes (--perfetto), put in place at the end
/// as a report file is: a run that fails leaves what was there.
pub struct StreamedFile {
    destination: Destination,
    out: BufWriter<File>,
}

impl StreamedFile {
    /// Checks `path` can be written, before anything is traced.
    pub fn create(path: &Path) -> Result<Self> {
        let opened = open(path).and_then(|destination| {
            let file = match &destination {
                Destination::InPlace { file, .. } => file.try_clone()?,
                Destination::Replace { temp, .. } => temp.file().try_clone()?,
                Destination::Stdout => bail!("it is standard output"),
            };
            Ok((destination, file))
        });
        let (destination, file) =
            opened.with_context(|| format!("cannot write {}", path.display()))?;
        Ok(StreamedFile {
            destination,
            out: BufWriter::with_capacity(BUFFER, file),
        })
    }

    pub fn out(&mut self) -> &mut BufWriter<File> {
        &mut self.out
    }

    /// Puts the file, `what`, in place.
    pub fn finish(mut self, what: &str) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("writing {what} failed"))?;
        self.destination.commit(what)
    }
}

/// `render`'s many small writes to `out`, batched.
fn buffered(
    out: &mut dyn Write,
    render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(BUFFER, out);
    render(&mut out)?;
    out.flush()
}

impl Destination {
    /// Writes `what` with `render`.
    fn write(
        &self,
        what: &str,
        render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<()> {
        let (path, mut file) = match self {
            Destination::Stdout => return on_stdout(render(&mut io::stdout().lock()), what),
            Destination::InPlace { path, file } => (path, file),
            Destination::Replace { path, temp } => (path, temp.file()),
        };
        render(&mut file).with_context(|| format!("writing {what} to {} failed", path.display()))
    }

    /// Puts a file written in place, under its name.
    fn commit(self, what: &str) -> Result<()> {
        match self {
            Destination::Replace { path, temp } => temp
                .commit()
                .with_context(|| format!("putting {what} in place at {} failed", path.display())),
            Destination::Stdout | Destination::InPlace { .. } => Ok(()),
        }
    }
}

/// Whether we were started with standard output closed (`>&-`). Rust's
/// runtime opens /dev/null read-write in its place before main; a shell's
/// `>/dev/null` opens it write-only.
fn stdout_was_closed() -> bool {
    let stdout = io::stdout();
    let Ok(flags) = nix::fcntl::fcntl(stdout.as_fd(), nix::fcntl::FcntlArg::F_GETFL) else {
        return true;
    };
    let read_write = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE == OFlag::O_RDWR;
    let dev_null = nix::sys::stat::fstat(stdout.as_fd()).is_ok_and(|st| {
        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
            && st.st_rdev == nix::sys::stat::makedev(1, 3)
    });
    read_write && dev_null
}

/// The result of writing `what` to standard output.
fn on_stdout(written: io::Result<()>, what: &str) -> Result<()> {
    match written {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Err(ReaderGone.into()),
        Err(err) => Err(err).with_context(|| format!("writing {what} to standard output failed")),
    }
}

fn open(path: &Path) -> Result<Destination> {
    let metadata = std::fs::metadata(path).ok();
    if metadata.as_ref().is_some_and(|m| m.is_dir()) {
        bail!("it is a directory");
    }
    let special = metadata.is_some_and(|m| !m.is_file());
    if special || is_under(path, "/dev") || is_under(path, "/proc") {
        let file = OpenOptions::new().write(true).truncate(true).open(path)?;
        // Kernel interface files take writes as commands, not reports.
        let fs_type = fstatfs(&file)?.filesystem_type();
        if fs_type == PROC_SUPER_MAGIC || fs_type == SYSFS_MAGIC {
            bail!("it is a kernel interface file, not a place for a report");
        }
        return Ok(Destination::InPlace {
            path: path.to_path_buf(),
            file,
        });
    }
    let directory = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().context("it names no file")?;
    let temp = Replacement::create(directory, Path::new(name))?;
    Ok(Destination::Replace {
        path: path.to_path_buf(),
        temp,
    })
}

/// Whether `path`, made absolute, lies under `root`.
fn is_under(path: &Path, root: &str) -> bool {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute.starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_reports_go() {
        assert!(is_under(Path::new("/dev/stdout"), "/dev"));
        assert!(is_under(Path::new("/proc/self/fd/1"), "/proc"));
        assert!(!is_under(Path::new("/devices/report.json"), "/dev"));
        assert!(!is_under(Path::new("report.json"), "/dev"));
    }

    #[test]
    fn a_device_is_written_in_place() {
        assert!(matches!(
            open(Path::new("/dev/null")).unwrap(),
            Destination::InPlace { .. }
        ));
    }

    #[test]
    fn kernel_interface_files_and_directories_are_refused() {
        let err = open(Path::new("/proc/version")).unwrap_err().to_string();
        assert!(
            err.contains("kernel interface") || err.contains("denied"),
            "{err}"
        );
        let err = open(Path::new("/tmp")).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
    }

    #[test]
    fn a_file_is_replaced_only_once_the_report_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "OLD").unwrap();
        let Destination::Replace { temp, .. } = open(&path).unwrap() else {
            panic!("a file is replaced");
        };
        drop(temp); // a failed run
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "OLD");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn several_windows_are_json_lines_one_is_one_pretty_object() {
        use crate::report::tests::sample;
        let (report, header, end) = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let written = |layouts: &[Layout]| {
            let mut output = Output::new(true, View::default(), Some(&path)).unwrap();
            for &layout in layouts {
                output.write(&report, &header, &end, layout).unwrap();
            }
            output.finish().unwrap();
            std::fs::read_to_string(&path).unwrap()
        };
        for layout in [Layout::Only, Layout::Triggered] {
            let text = written(&[layout]);
            assert!(text.lines().count() > 100, "pretty");
            serde_json::from_str::<serde_json::Value>(&text).unwrap();
        }
        let text = written(&[Layout::OneOfMany; 3]);
        assert_eq!(text.lines().count(), 3);
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
}
