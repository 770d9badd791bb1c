//! --record FILE and `kernel-delay report FILE`: a window recorded once,
//! reported again any way.
//!
//! A recording keeps what each window's aggregation took in, in order (the
//! records, the threads and processes /proc listed, the calls in progress
//! at the close...), and what its report needs besides (the header, the
//! losses, the warnings, the names of the stacks, made when the window
//! closed, while the files they name were still there): replayed, the same
//! aggregation gives the same report. The format (docs/recording.md):
//!
//! ```text
//! "KDRECORD" (8 bytes), format version (u32, little-endian)
//! zstd frames of messages: each a u32 little-endian length, the CRC-32
//! of the message (u32, little-endian), then a Message in postcard
//! (serde) encoding
//! ```
//!
//! zstd's frames carry no checksum of what they hold: the message's
//! checksum is what tells a damaged file from a whole one, at the first
//! damaged message.
//!
//! The zstd stream is flushed at least every FLUSH_INTERVAL: a run killed
//! leaves a file whose messages up to the last flush are whole.

pub mod read;
pub mod write;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::kernel::irq::SystemSoftirqs;
use crate::kernel::loss::Lost;
use crate::model::aggregate::{Input, Setup};
use crate::model::sched::ThreadState;
use crate::output::Layout;
use crate::report::{Header, StopReason, WindowInfo};
use crate::symbols::symbolize::NameTable;

/// What a recording file starts with.
pub const MAGIC: &[u8; 8] = b"KDRECORD";
/// The format this version writes and reads.
pub const VERSION: u32 = 2;
/// In front of each message: its length, then its CRC-32 (u32 each).
pub const MESSAGE_HEAD: usize = 8;

/// What a recording holds, message after message: a Run, then per window a
/// Window, Opened, its Inputs and its WindowEnd, Reported or a Note, and an End
/// when the run ended as it should.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message {
    Run(Run),
    /// A window opened, to be reported laid out as `layout`.
    Window {
        header: Header,
        setup: Setup,
        layout: Layout,
    },
    /// What /proc said of the window's threads as it opened.
    Opened(ThreadsSeen),
    Input(Input),
    /// The window closed: what its report needs besides its inputs.
    WindowEnd(Box<WindowEnd>),
    /// The window was reported.
    Reported,
    /// A line about the windows instead of a report (one skipped).
    Note(String),
    /// The run ended; a recording without it was cut short.
    End,
}

/// The threads of a window's processes as /proc listed them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThreadsSeen {
    pub names: HashMap<u32, Vec<u8>>,
    pub states: HashMap<u32, ThreadState>,
    /// Their processes.
    pub pids: HashMap<u32, u32>,
}

/// The run: who recorded what, where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// kernel-delay's version.
    pub tool: String,
    pub kernel: String,
    /// The command line, as given.
    pub arguments: Vec<String>,
    /// When tracing began, on both clocks.
    pub start: Timestamp,
}

/// A window's close, as its report needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowEnd {
    pub kernel: String,
    pub end: Timestamp,
    pub stop_reason: StopReason,
    pub lost: Lost,
    pub spilled_calls: u64,
    pub warnings: Vec<String>,
    pub skipped_tracepoints: Vec<String>,
    pub softirqs_system: SystemSoftirqs,
    pub window: Option<WindowInfo>,
    pub names: crate::report::ThreadNames,
    /// The names of its stacks.
    pub stacks: NameTable,
}
