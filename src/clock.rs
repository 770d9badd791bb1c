//! Timestamps: the kernel's monotonic clock (what BPF records) paired with
//! wall-clock time (what the report shows).

use nix::time::{clock_gettime, ClockId};
use serde::{Deserialize, Serialize};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const RFC3339_NANOS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
const HMS: &[FormatItem<'static>] = format_description!("[hour]:[minute]:[second]");

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Timestamp {
    /// CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns().
    pub mono_ns: u64,
    #[serde(with = "unix_ns")]
    pub wall: OffsetDateTime,
}

/// Wall-clock time as nanoseconds since the epoch (a recording's).
mod unix_ns {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(wall: &OffsetDateTime, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_i128(wall.unix_timestamp_nanos())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<OffsetDateTime, D::Error> {
        let ns = i128::deserialize(input)?;
        OffsetDateTime::from_unix_timestamp_nanos(ns).map_err(D::Error::custom)
    }
}

pub fn monotonic_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

pub fn now() -> Timestamp {
    Timestamp {
        mono_ns: monotonic_ns(),
        wall: OffsetDateTime::now_utc(),
    }
}

/// The moment CLOCK_MONOTONIC read `mono_ns`, with its wall-clock time.
pub fn at(mono_ns: u64) -> Timestamp {
    let now = now();
    let ago = time::Duration::nanoseconds(now.mono_ns.saturating_sub(mono_ns) as i64);
    Timestamp {
        mono_ns,
        wall: now.wall - ago,
    }
}

/// `2026-11-26T10:00:00.123456789Z`
pub fn rfc3339(wall: OffsetDateTime) -> String {
    wall.format(RFC3339_NANOS).expect("UTC time formats")
}

/// `10:00:00`
pub fn hms(wall: OffsetDateTime) -> String {
    wall.format(HMS).expect("UTC time formats")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_with_nanoseconds_in_utc() {
        let t = datetime!(2026-11-26 10:00:00.000001 UTC);
        assert_eq!(rfc3339(t), "2026-11-26T10:00:00.000001000Z");
        assert_eq!(hms(t), "10:00:00");
    }

    #[test]
    fn monotonic_advances() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }
}
