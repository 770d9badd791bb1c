//! Reading a recording back, message by message: a file that is not a
//! recording, or of a newer format, is refused at once; one cut short
//! (a run killed) or damaged gives its messages up to the damage, then
//! says what went wrong.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{Message, MAGIC, MESSAGE_HEAD, VERSION};

/// The longest message a recording holds (a window's stack names are the
/// largest): a longer length is damage, not a reason to allocate it.
const MAX_MESSAGE: usize = 1 << 30;

pub struct Playback {
    decoder: zstd::stream::read::Decoder<'static, BufReader<File>>,
    buffer: Vec<u8>,
}

/// What comes next in a recording.
pub enum Next {
    Message(Message),
    /// The file ends here, between two messages.
    Eof,
    /// It cannot be read past here: why.
    Damaged(String),
}

impl Playback {
    /// Opens the recording at `path`, checking what it is.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display();
        let mut file = File::open(path).with_context(|| format!("cannot read {shown}"))?;
        let mut head = [0u8; 12];
        let read =
            read_up_to(&mut file, &mut head).with_context(|| format!("cannot read {shown}"))?;
        if read == 0 {
            bail!("{shown} is empty: not a recording");
        }
        if read < head.len() || &head[..8] != MAGIC {
            bail!("{shown} is not a kernel-delay recording");
        }
        let version = u32::from_le_bytes(head[8..].try_into().expect("4 bytes"));
        if version > VERSION {
            bail!(
                "{shown} is a recording of format {version}; this kernel-delay reads format {VERSION}: report it with a newer kernel-delay"
            );
        }
        if version < VERSION {
            bail!(
                "{shown} is a recording of format {version}, which this kernel-delay does not read (format {VERSION} checks each message): record it again"
            );
        }
        let decoder = zstd::stream::read::Decoder::new(file)
            .with_context(|| format!("cannot read {shown}"))?;
        Ok(Playback {
            decoder,
            buffer: Vec::new(),
        })
    }

    pub fn next(&mut self) -> Next {
        let mut head = [0u8; MESSAGE_HEAD];
        match read_up_to(&mut self.decoder, &mut head) {
            Ok(0) => return Next::Eof,
            Ok(MESSAGE_HEAD) => {}
            Ok(_) => return Next::Damaged("it ends in the middle of a message".to_string()),
            Err(err) => return Next::Damaged(damage(&err)),
        }
        let length = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let checksum = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if length > MAX_MESSAGE {
            return Next::Damaged(format!("a message claims {length} bytes"));
        }
        self.buffer.resize(length, 0);
        match read_up_to(&mut self.decoder, &mut self.buffer) {
            Ok(read) if read == length => {}
            Ok(_) => return Next::Damaged("it ends in the middle of a message".to_string()),
            Err(err) => return Next::Damaged(damage(&err)),
        }
        if crc32fast::hash(&self.buffer) != checksum {
            return Next::Damaged("a message's checksum does not match".to_string());
        }
        match postcard::from_bytes(&self.buffer) {
            Ok(message) => Next::Message(message),
            Err(err) => Next::Damaged(format!("a message cannot be decoded ({err})")),
        }
    }
}

/// What a failed read says of the file.
fn damage(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::UnexpectedEof => "it ends in the middle of a compressed block".to_string(),
        _ => format!("it is damaged ({err})"),
    }
}

/// Reads until `buffer` is full or the input ends: the bytes read.
fn read_up_to(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}
