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

use super::{Message, MAGIC, MESSAGE_HEAD, VERSION};
use crate::model::aggregate::Input;

/// Message::Input's index among Message's variants.
const INPUT_VARIANT: u8 = 3;

/// How long compressed data may wait in memory.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Encoded messages handed to zstd at a time: its streaming interface
/// costs per call, and the clock is read per batch, not per message.
const BATCH: usize = 64 << 10;
/// zstd's level: its fastest ones compress these records about as well
/// as the slower ones (docs/recording.md), and the reader must keep up.
const LEVEL: i32 = 1;

pub struct Recorder {
    path: PathBuf,
    encoder: Option<zstd::stream::write::Encoder<'static, BufWriter<File>>>,
    /// Messages encoded, not yet handed to zstd.
    pending: Vec<u8>,
    flushed: Instant,
    /// The first failure to write: the recording stops there.
    failure: Option<io::Error>,
    /// It was said in a window's warnings.
    warned: bool,
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
        let encoder = open().map_err(|err| match err.raw_os_error() {
            Some(libc_eloop) if libc_eloop == nix::errno::Errno::ELOOP as i32 => {
                anyhow::anyhow!(
                    "cannot write {}: it is a symbolic link (not followed)",
                    path.display()
                )
            }
            _ => anyhow::Error::new(err).context(format!("cannot write {}", path.display())),
        })?;
        Ok(Recorder {
            path: path.to_path_buf(),
            encoder: Some(encoder),
            pending: Vec::with_capacity(BATCH + 4096),
            flushed: Instant::now(),
            failure: None,
            warned: false,
        })
    }

    /// Writes `message` (nothing once writing has failed); one that is
    /// not an input is flushed at once: a window's start and end are in
    /// the file as soon as they are known.
    pub fn write(&mut self, message: &Message) {
        let start = self.begin_message();
        let encoded = postcard::to_io(message, &mut self.pending).map(|_| ());
        self.end_message(start, encoded, true);
    }

    /// Writes Message::Input(`input`), without a copy of it: postcard
    /// encodes a variant as its index, then its fields.
    pub fn write_input(&mut self, input: &Input) {
        let start = self.begin_message();
        self.pending.push(INPUT_VARIANT);
        let encoded = postcard::to_io(input, &mut self.pending).map(|_| ());
        self.end_message(start, encoded, false);
    }

    /// Room for a message's length and checksum: where the message
    /// starts.
    fn begin_message(&mut self) -> usize {
        let start = self.pending.len();
        self.pending.extend_from_slice(&[0; MESSAGE_HEAD]);
        start
    }

    /// Puts the length and checksum of the message begun at `start` in
    /// front of it; hands the pending messages to zstd when they are many,
    /// or `flush` asks (then flushed too, as they are when the last flush
    /// is old).
    fn end_message(&mut self, start: usize, encoded: postcard::Result<()>, flush: bool) {
        if self.encoder.is_none() {
            self.pending.clear();
            return;
        }
        let length = encoded.map_err(io::Error::other).and_then(|()| {
            u32::try_from(self.pending.len() - start - MESSAGE_HEAD).map_err(io::Error::other)
        });
        let written = length.and_then(|length| {
            let body = start + MESSAGE_HEAD;
            let checksum = crc32fast::hash(&self.pending[body..]);
            self.pending[start..start + 4].copy_from_slice(&length.to_le_bytes());
            self.pending[start + 4..body].copy_from_slice(&checksum.to_le_bytes());
            if flush || self.pending.len() >= BATCH {
                self.hand_over(flush)?;
            }
            Ok(())
        });
        if let Err(err) = written {
            self.failed(err);
        }
    }

    /// Flushes what is pending if the last flush is old: called as the
    /// window is read, so that a quiet window's records reach the file too.
    pub fn flush_if_due(&mut self) {
        if self.flushed.elapsed() >= FLUSH_INTERVAL {
            if let Err(err) = self.hand_over(true) {
                self.failed(err);
            }
        }
    }

    /// Gives zstd the pending messages; flushes if `flush` or if the last
    /// flush is old.
    fn hand_over(&mut self, flush: bool) -> io::Result<()> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(());
        };
        encoder.write_all(&self.pending)?;
        self.pending.clear();
        if flush || self.flushed.elapsed() >= FLUSH_INTERVAL {
            encoder.flush()?;
            self.flushed = Instant::now();
        }
        Ok(())
    }

    fn failed(&mut self, err: io::Error) {
        self.encoder = None;
        self.pending = Vec::new();
        self.failure.get_or_insert(err);
    }

    /// Why the recording stopped early, once: for the window's warnings.
    pub fn take_failure(&mut self) -> Option<String> {
        let err = self.failure.as_ref().filter(|_| !self.warned)?;
        let warning = format!(
            "the recording {} stopped here: writing it failed ({err})",
            self.path.display()
        );
        self.warned = true;
        Some(warning)
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
    use crate::recording::read::{Next, Playback};

    #[test]
    fn what_is_written_is_read_back_message_by_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.kd");
        let mut recorder = Recorder::create(&path).unwrap();
        let inputs: Vec<Input> = (0..20_000)
            .map(|nr| Input::CallInProgress { tid: 7, nr })
            .collect();
        recorder.write(&Message::Note("a window skipped".to_string()));
        for input in &inputs {
            recorder.write_input(input);
        }
        recorder.finish().unwrap();
        let mut playback = Playback::open(&path).unwrap();
        assert!(
            matches!(playback.next(), Next::Message(Message::Note(n)) if n == "a window skipped")
        );
        for input in inputs {
            match playback.next() {
                Next::Message(Message::Input(read)) => assert_eq!(read, input),
                _ => panic!("not the input written"),
            }
        }
        assert!(matches!(playback.next(), Next::Message(Message::End)));
        assert!(matches!(playback.next(), Next::Eof));
    }

    #[test]
    fn a_message_that_does_not_match_its_checksum_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.kd");
        let message = postcard::to_stdvec(&Message::Note("whole".to_string())).unwrap();
        let mut messages = Vec::new();
        for checksum in [crc32fast::hash(&message), crc32fast::hash(&message) ^ 1] {
            messages.extend_from_slice(&(message.len() as u32).to_le_bytes());
            messages.extend_from_slice(&checksum.to_le_bytes());
            messages.extend_from_slice(&message);
        }
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&VERSION.to_le_bytes());
        file.extend(zstd::encode_all(&messages[..], LEVEL).unwrap());
        std::fs::write(&path, file).unwrap();
        let mut playback = Playback::open(&path).unwrap();
        assert!(matches!(playback.next(), Next::Message(Message::Note(n)) if n == "whole"));
        assert!(
            matches!(playback.next(), Next::Damaged(why) if why.contains("checksum")),
            "the second message's checksum is wrong"
        );
    }
}
