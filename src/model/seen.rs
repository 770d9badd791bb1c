//! What a window's aggregation sees happen to each thread, as it sees it
//! (--perfetto): the stretches its time budget adds up, its completed
//! calls with their time by state, the interrupts charged to it, what
//! woke it, and the names of the tasks that are not traced.

use crate::kernel::records::{IrqSource, Task, Waker};
use crate::model::sched::{StateTimes, Stretch};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A stretch of its time in one state.
    Stretch {
        tid: u32,
        pid: Option<u32>,
        stretch: Stretch,
    },
    /// A call that returned, with its time by state.
    Call {
        tid: u32,
        pid: Option<u32>,
        nr: i64,
        errno: u32,
        enter_ns: u64,
        exit_ns: u64,
        times: StateTimes,
    },
    /// An interrupt that ran while the thread had the CPU.
    Interrupt {
        tid: u32,
        pid: Option<u32>,
        source: IrqSource,
        start_ns: u64,
        end_ns: u64,
    },
    /// Woken by `waker` (--wakers) out of a wait, into a stretch ready
    /// (the next of the thread's stretches seen); `waker_traced`: the
    /// waker is a traced thread.
    Wakeup {
        tid: u32,
        ts_ns: u64,
        waker: Waker,
        waker_traced: bool,
    },
    /// A task that is not traced, as a record named it (raw, untrusted).
    TaskNamed { task: Task, comm: [u8; 16] },
}
