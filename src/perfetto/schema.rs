//! The field numbers and enum values of Perfetto's trace schema (v51's
//! protos/perfetto/trace/*.proto) that this writer uses: only those. The
//! e2e tests read the traces with the Perfetto project's own classes.

pub mod trace {
    pub const PACKET: u32 = 1;
}

pub mod trace_packet {
    pub const CLOCK_SNAPSHOT: u32 = 6;
    pub const TIMESTAMP: u32 = 8;
    pub const TRUSTED_PACKET_SEQUENCE_ID: u32 = 10;
    pub const TRACK_EVENT: u32 = 11;
    pub const INTERNED_DATA: u32 = 12;
    pub const SEQUENCE_FLAGS: u32 = 13;
    pub const TIMESTAMP_CLOCK_ID: u32 = 58;
    pub const TRACK_DESCRIPTOR: u32 = 60;

    /// SequenceFlags.
    pub const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
    pub const SEQ_NEEDS_INCREMENTAL_STATE: u64 = 2;
}

pub mod clock_snapshot {
    pub const CLOCKS: u32 = 1;
    pub const PRIMARY_TRACE_CLOCK: u32 = 2;
    /// Clock's.
    pub const CLOCK_ID: u32 = 1;
    pub const TIMESTAMP: u32 = 2;
    /// BuiltinClock.
    pub const BUILTIN_CLOCK_MONOTONIC: u32 = 3;
}

pub mod track_descriptor {
    pub const UUID: u32 = 1;
    pub const NAME: u32 = 2;
    pub const PROCESS: u32 = 3;
    pub const THREAD: u32 = 4;
    pub const PARENT_UUID: u32 = 5;
}

pub mod process_descriptor {
    pub const PID: u32 = 1;
    pub const PROCESS_NAME: u32 = 6;
}

pub mod thread_descriptor {
    pub const PID: u32 = 1;
    pub const TID: u32 = 2;
    pub const THREAD_NAME: u32 = 5;
}

pub mod track_event {
    pub const DEBUG_ANNOTATIONS: u32 = 4;
    pub const TYPE: u32 = 9;
    pub const NAME_IID: u32 = 10;
    pub const TRACK_UUID: u32 = 11;
    /// Both fixed64.
    pub const FLOW_IDS: u32 = 47;
    pub const TERMINATING_FLOW_IDS: u32 = 48;

    /// Type.
    pub const TYPE_SLICE_BEGIN: u64 = 1;
    pub const TYPE_SLICE_END: u64 = 2;
    pub const TYPE_INSTANT: u64 = 3;
}

pub mod debug_annotation {
    pub const NAME_IID: u32 = 1;
    pub const INT_VALUE: u32 = 4;
    pub const STRING_VALUE: u32 = 6;
}

pub mod interned_data {
    pub const EVENT_NAMES: u32 = 2;
    pub const DEBUG_ANNOTATION_NAMES: u32 = 3;
    /// EventName's and DebugAnnotationName's.
    pub const IID: u32 = 1;
    pub const NAME: u32 = 2;
}
