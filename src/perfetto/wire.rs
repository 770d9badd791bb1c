//! Protobuf's wire format, the little of it a Perfetto trace needs:
//! messages built field by field (varints, fixed64, strings, messages in
//! messages), and the trace's most frequent packets, a slice's begin and
//! end, encoded straight into the output without a message of their own.

use super::schema::{trace, trace_packet, track_event};

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LENGTH_DELIMITED: u32 = 2;

/// A message's encoded fields, in the order they are added.
#[derive(Default)]
pub struct Message(Vec<u8>);

impl Message {
    pub fn new() -> Self {
        Self::default()
    }

    /// An unsigned field (uint32, uint64, an enum).
    pub fn uint(mut self, number: u32, value: u64) -> Self {
        self.tag(number, VARINT);
        self.varint(value);
        self
    }

    /// A signed field (int32, int64): two's complement, as protobuf does.
    pub fn int(self, number: u32, value: i64) -> Self {
        self.uint(number, value as u64)
    }

    pub fn fixed64(mut self, number: u32, value: u64) -> Self {
        self.tag(number, FIXED64);
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn text(self, number: u32, value: &str) -> Self {
        self.bytes(number, value.as_bytes())
    }

    pub fn message(self, number: u32, message: &Message) -> Self {
        self.bytes(number, &message.0)
    }

    /// The encoded fields.
    pub fn encoded(&self) -> &[u8] {
        &self.0
    }

    fn bytes(mut self, number: u32, value: &[u8]) -> Self {
        self.tag(number, LENGTH_DELIMITED);
        self.varint(value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    fn tag(&mut self, number: u32, wire_type: u32) {
        self.varint(u64::from(number << 3 | wire_type));
    }

    fn varint(&mut self, value: u64) {
        let mut out = [0u8; 10];
        let length = varint(&mut out, value);
        self.0.extend_from_slice(&out[..length]);
    }
}

/// A begin (with its interned name) or an end on `track` at `ts_ns`,
/// framed as one of Trace's packets, appended to `out`: the same bytes as
/// through Message, without its allocations.
#[allow(clippy::too_many_arguments)]
pub fn slice_event(
    out: &mut Vec<u8>,
    ts_ns: u64,
    clock_id: u32,
    sequence: u32,
    flags: u64,
    kind: u64,
    track: u64,
    name_iid: Option<u64>,
) {
    let mut event = [0u8; 40];
    let mut at = 0;
    at += field(&mut event[at..], track_event::TYPE, kind);
    at += field(&mut event[at..], track_event::TRACK_UUID, track);
    if let Some(iid) = name_iid {
        at += field(&mut event[at..], track_event::NAME_IID, iid);
    }
    let mut packet = [0u8; 80];
    let mut length = 0;
    for (number, value) in [
        (trace_packet::TIMESTAMP, ts_ns),
        (trace_packet::TIMESTAMP_CLOCK_ID, u64::from(clock_id)),
        (
            trace_packet::TRUSTED_PACKET_SEQUENCE_ID,
            u64::from(sequence),
        ),
        (trace_packet::SEQUENCE_FLAGS, flags),
    ] {
        length += field(&mut packet[length..], number, value);
    }
    length += length_delimited(&mut packet[length..], trace_packet::TRACK_EVENT, at);
    packet[length..length + at].copy_from_slice(&event[..at]);
    length += at;
    let mut head = [0u8; 11];
    let head_length = length_delimited(&mut head, trace::PACKET, length);
    out.extend_from_slice(&head[..head_length]);
    out.extend_from_slice(&packet[..length]);
}

/// A varint field: its tag, then its value; the bytes written.
fn field(out: &mut [u8], number: u32, value: u64) -> usize {
    let tag = varint(out, u64::from(number << 3 | VARINT));
    tag + varint(&mut out[tag..], value)
}

/// A length-delimited field's tag and length; the bytes written.
fn length_delimited(out: &mut [u8], number: u32, length: usize) -> usize {
    let tag = varint(out, u64::from(number << 3 | LENGTH_DELIMITED));
    tag + varint(&mut out[tag..], length as u64)
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

    #[test]
    fn fields_are_encoded_as_protobufs_encoding_guide_shows() {
        // The guide's examples (protobuf.dev/programming-guides/encoding):
        // 150 in field 1; "testing" in field 2; that message in field 3.
        let inner = Message::new().uint(1, 150);
        assert_eq!(inner.encoded(), [0x08, 0x96, 0x01]);
        let text = Message::new().text(2, "testing");
        assert_eq!(text.encoded(), b"\x12\x07testing");
        let outer = Message::new().message(3, &inner);
        assert_eq!(outer.encoded(), [0x1a, 0x03, 0x08, 0x96, 0x01]);
        // A negative int64 takes ten bytes; fixed64 is little-endian.
        let negative = Message::new().int(1, -2);
        assert_eq!(
            negative.encoded()[1..],
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        let fixed = Message::new().fixed64(47, 0x0102);
        assert_eq!(fixed.encoded(), [0xf9, 0x02, 0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        // Field numbers from 16 take a two-byte tag.
        assert_eq!(Message::new().uint(58, 3).encoded(), [0xd0, 0x03, 0x03]);
    }

    /// `slice_event`'s bytes, built again through Message.
    fn through_messages(ts: u64, kind: u64, track: u64, name_iid: Option<u64>) -> Vec<u8> {
        let mut event = Message::new()
            .uint(track_event::TYPE, kind)
            .uint(track_event::TRACK_UUID, track);
        if let Some(iid) = name_iid {
            event = event.uint(track_event::NAME_IID, iid);
        }
        let packet = Message::new()
            .uint(trace_packet::TIMESTAMP, ts)
            .uint(trace_packet::TIMESTAMP_CLOCK_ID, 3)
            .uint(trace_packet::TRUSTED_PACKET_SEQUENCE_ID, 1)
            .uint(trace_packet::SEQUENCE_FLAGS, 2)
            .message(trace_packet::TRACK_EVENT, &event);
        Message::new()
            .message(trace::PACKET, &packet)
            .encoded()
            .to_vec()
    }

    #[test]
    fn a_slice_event_is_the_packet_messages_make() {
        // The largest values each field can hold, and small ones.
        let (ts, track) = (u64::MAX - 5, 2 << 32 | 4_000_000);
        for (ts, kind, track, name_iid) in [
            (ts, track_event::TYPE_SLICE_BEGIN, track, Some(u64::MAX)),
            (17, track_event::TYPE_SLICE_END, track, None),
            (0, track_event::TYPE_SLICE_BEGIN, 1, Some(300)),
            (ts, track_event::TYPE_SLICE_END, u64::MAX, None),
        ] {
            let mut out = Vec::new();
            slice_event(&mut out, ts, 3, 1, 2, kind, track, name_iid);
            assert_eq!(out, through_messages(ts, kind, track, name_iid));
        }
    }
}
