//! Writing a recording as the windows run: each message encoded and
//! compressed as it comes, so that memory stays bounded however long the
//! window; flushed at least every FLUSH_INTERVAL, so that a run killed
//! leaves what it had recorded until then.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;

use super::{Message, MAGIC, VERSION};
use crate::model::aggregate::Input;

/// Message::Input's index among Message's variants.
const INPUT_VARIANT: u8 = 3;

/// How long compressed data may wait in memory.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// zstd's level: its fastest ones compress these records about as well
/// as the slower ones (docs/recording.md), and the reader must keep up.
const LEVEL: i32 = 1;

pub struct Recorder {
    path: PathBuf,
    encoder: Option<zstd::stream::write::Encoder<'static, BufWriter<File>>>,
    /// The message being encoded, reused.
    buffer: Vec<u8>,
    flushed: Instant,
    /// The first failure to write: the recording stops there.
    failure: Option<io::Error>,
}

impl Recorder {
    /// Creates (or truncates) the file at `path`, in place: what a run
    /// killed leaves must be there. A symbolic link is refused, not
    /// followed.
    pub fn create(path: &Path) -> Result<Self> {
        let open = || -> io::Result<_> {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(OFlag::O_NOFOLLOW.bits())
                .open(path)?;
            let mut out = BufWriter::new(file);
            out.write_all(MAGIC)?;
            out.write_all(&VERSION.to_le_bytes())?;
            zstd::stream::write::Encoder::new(out, LEVEL)
        };
        let encoder = open().with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Recorder {
            path: path.to_path_buf(),
            encoder: Some(encoder),
            buffer: Vec::new(),
            flushed: Instant::now(),
            failure: None,
        })
    }

    /// Writes `message` (nothing once writing has failed); one that is
    /// not an input is flushed at once: a window's start and end are in
    /// the file as soon as they are known.
    pub fn write(&mut self, message: &Message) {
        self.buffer.clear();
        let encoded = postcard::to_io(message, &mut self.buffer).map(|_| ());
        self.write_encoded(encoded, true);
    }

    /// Writes Message::Input(`input`), without a copy of it: postcard
    /// encodes a variant as its index, then its fields.
    pub fn write_input(&mut self, input: &Input) {
        self.buffer.clear();
        self.buffer.push(INPUT_VARIANT);
        let encoded = postcard::to_io(input, &mut self.buffer).map(|_| ());
        self.write_encoded(encoded, false);
    }

    /// Writes the message encoded in the buffer, and flushes it with what
    /// came before if `flush`, or if the last flush is old.
    fn write_encoded(&mut self, encoded: postcard::Result<()>, flush: bool) {
        let Some(encoder) = self.encoder.as_mut() else {
            return;
        };
        let written = encoded.map_err(io::Error::other).and_then(|()| {
            let length = u32::try_from(self.buffer.len()).map_err(io::Error::other)?;
            encoder.write_all(&length.to_le_bytes())?;
            encoder.write_all(&self.buffer)?;
            if flush || self.flushed.elapsed() >= FLUSH_INTERVAL {
                encoder.flush()?;
                self.flushed = Instant::now();
            }
            Ok(())
        });
        if let Err(err) = written {
            self.failed(err);
        }
    }

    fn failed(&mut self, err: io::Error) {
        self.encoder = None;
        self.failure.get_or_insert(err);
    }

    /// Why the recording stopped early, once: for the window's warnings.
    pub fn take_failure(&mut self) -> Option<String> {
        let err = self.failure.take()?;
        Some(format!(
            "the recording {} stopped here: writing it failed ({err})",
            self.path.display()
        ))
    }

    /// Ends the recording: the End message, the zstd frame closed, the
    /// file synced.
    pub fn finish(mut self) -> Result<()> {
        self.write(&Message::End);
        let path = self.path.clone();
        let finished = match self.encoder.take() {
            Some(encoder) => encoder
                .finish()
                .and_then(|out| out.into_inner().map_err(io::IntoInnerError::into_error))
                .and_then(|file| file.sync_all()),
            None => Err(self
                .failure
                .take()
                .unwrap_or_else(|| io::Error::other("it stopped early"))),
        };
        finished.with_context(|| format!("writing the recording {} failed", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_written_as_its_message_is() {
        let input = Input::CallInProgress { tid: 7, nr: 230 };
        let mut recorder = Recorder {
            path: PathBuf::new(),
            encoder: None,
            buffer: Vec::new(),
            flushed: Instant::now(),
            failure: None,
        };
        recorder.write_input(&input);
        let whole = postcard::to_allocvec(&Message::Input(input)).unwrap();
        assert_eq!(recorder.buffer, whole);
    }
}
