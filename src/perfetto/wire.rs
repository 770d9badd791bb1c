//! The trace's most frequent packets, a slice's begin and end, encoded by
//! hand: through the protobuf library's messages each costs some 200 ns
//! (its allocations), this way a few. The field numbers are the schema's
//! (perfetto_protos), which the tests decode these packets with.

/// TracePacket's fields.
const TIMESTAMP: u32 = 8;
const TRUSTED_PACKET_SEQUENCE_ID: u32 = 10;
const TRACK_EVENT: u32 = 11;
const SEQUENCE_FLAGS: u32 = 13;
const TIMESTAMP_CLOCK_ID: u32 = 58;
/// TrackEvent's.
const TYPE: u32 = 9;
const NAME_IID: u32 = 10;
const TRACK_UUID: u32 = 11;

const VARINT: u32 = 0;
const LENGTH_DELIMITED: u32 = 2;

/// A begin (with its interned name) or an end on `track` at `ts_ns`,
/// framed as one of Trace's packets (field 1), appended to `out`.
#[allow(clippy::too_many_arguments)]
pub fn slice_event(
    out: &mut Vec<u8>,
    ts_ns: u64,
    clock_id: u32,
    sequence: u32,
    flags: u32,
    kind: u64,
    track: u64,
    name_iid: Option<u64>,
) {
    let mut event = [0u8; 40];
    let mut at = 0;
    at += field(&mut event[at..], TYPE, kind);
    at += field(&mut event[at..], TRACK_UUID, track);
    if let Some(iid) = name_iid {
        at += field(&mut event[at..], NAME_IID, iid);
    }
    let mut packet = [0u8; 80];
    let mut length = 0;
    length += field(&mut packet[length..], TIMESTAMP, ts_ns);
    length += field(
        &mut packet[length..],
        TIMESTAMP_CLOCK_ID,
        u64::from(clock_id),
    );
    length += field(
        &mut packet[length..],
        TRUSTED_PACKET_SEQUENCE_ID,
        u64::from(sequence),
    );
    length += field(&mut packet[length..], SEQUENCE_FLAGS, u64::from(flags));
    length += varint(
        &mut packet[length..],
        u64::from(TRACK_EVENT << 3 | LENGTH_DELIMITED),
    );
    length += varint(&mut packet[length..], at as u64);
    packet[length..length + at].copy_from_slice(&event[..at]);
    length += at;
    let mut head = [0u8; 11];
    let mut head_length = varint(&mut head, u64::from(1 << 3 | LENGTH_DELIMITED));
    head_length += varint(&mut head[head_length..], length as u64);
    out.extend_from_slice(&head[..head_length]);
    out.extend_from_slice(&packet[..length]);
}

/// A varint field: its tag, then its value; the bytes written.
fn field(out: &mut [u8], number: u32, value: u64) -> usize {
    let tag = varint(out, u64::from(number << 3 | VARINT));
    tag + varint(&mut out[tag..], value)
}

/// `value` as a protobuf varint; the bytes written.
fn varint(out: &mut [u8], mut value: u64) -> usize {
    let mut at = 0;
    while value >= 0x80 {
        out[at] = (value as u8) | 0x80;
        value >>= 7;
        at += 1;
    }
    out[at] = value as u8;
    at + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use perfetto_protos::trace::Trace;
    use perfetto_protos::track_event::track_event::Type;
    use protobuf::Message;

    #[test]
    fn the_schema_reads_the_packets_as_written() {
        let mut out = Vec::new();
        let (ts, track) = (u64::MAX - 5, 2 << 32 | 4_000_000);
        slice_event(
            &mut out,
            ts,
            3,
            1,
            2,
            Type::TYPE_SLICE_BEGIN as u64,
            track,
            Some(300),
        );
        slice_event(
            &mut out,
            17,
            3,
            1,
            2,
            Type::TYPE_SLICE_END as u64,
            track,
            None,
        );
        let trace = Trace::parse_from_bytes(&out).expect("a Trace");
        let [begin, end] = &trace.packet[..] else {
            panic!("two packets: {trace:?}");
        };
        assert_eq!(
            (
                begin.timestamp(),
                begin.timestamp_clock_id(),
                begin.trusted_packet_sequence_id()
            ),
            (ts, 3, 1)
        );
        assert_eq!(begin.sequence_flags(), 2);
        let event = begin.track_event();
        assert_eq!(event.type_(), Type::TYPE_SLICE_BEGIN);
        assert_eq!((event.track_uuid(), event.name_iid()), (track, 300));
        assert_eq!(end.timestamp(), 17);
        let event = end.track_event();
        assert_eq!(event.type_(), Type::TYPE_SLICE_END);
        assert_eq!(event.track_uuid(), track);
        assert!(!event.has_name_iid());
    }
}
