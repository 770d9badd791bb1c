//! The JSON report (schema `kernel-delay/1`).

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use super::Report;

/// Streams the report: a report of many thousand threads is never held
/// as one string.
pub fn write(report: &Report, out: &mut impl io::Write) -> io::Result<()> {
    let formatter = InlineNestedArrays {
        pretty: PrettyFormatter::new(),
        open: Vec::new(),
    };
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
    report.serialize(&mut serializer)?;
    out.write_all(b"\n")
}

/// The report on one line (JSON Lines: one report per window).
pub fn write_line(report: &Report, out: &mut impl io::Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, report)?;
    out.write_all(b"\n")
}

/// Pretty JSON, but an array inside an array is written on one line: a
/// histogram bucket `[1024, 2047, 3]` is one line, not five.
struct InlineNestedArrays {
    pretty: PrettyFormatter<'static>,
    /// The containers open: whether each is an array written inline.
    open: Vec<Container>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
    InlineArray,
}

impl InlineNestedArrays {
    fn inline(&self) -> bool {
        self.open.last() == Some(&Container::InlineArray)
    }
}

impl Formatter for InlineNestedArrays {
    fn begin_array<W: ?Sized + io::Write>(&mut self, out: &mut W) -> io::Result<()> {
        if matches!(
            self.open.last(),
            Some(Container::Array | Container::InlineArray)
        ) {
            self.open.push(Container::InlineArray);
            return out.write_all(b"[");
        }
        self.open.push(Container::Array);
        self.pretty.begin_array(out)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, out: &mut W) -> io::Result<()> {
        match self.open.pop() {
            Some(Container::InlineArray) => out.write_all(b"]"),
            _ => self.pretty.end_array(out),
        }
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> io::Result<()> {
        match (self.inline(), first) {
            (true, true) => Ok(()),
            (true, false) => out.write_all(b", "),
            (false, _) => self.pretty.begin_array_value(out, first),
        }
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, out: &mut W) -> io::Result<()> {
        if self.inline() {
            return Ok(());
        }
        self.pretty.end_array_value(out)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open.push(Container::Object);
        self.pretty.begin_object(out)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open.pop();
        self.pretty.end_object(out)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_object_key(out, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.pretty.begin_object_value(out)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{rendered, sample_report};
    use serde_json::Value;

    fn render(report: &Report) -> String {
        rendered(report, write)
    }

    #[test]
    fn histogram_buckets_take_a_line_each() {
        let json = render(&sample_report());
        assert!(json.contains("\"hist\": [\n"), "{json}");
        assert!(json.contains("[64, 127, 1],\n"), "{json}");
        assert!(json.contains("\"hist\": []"), "{json}");
        assert!(
            json.contains("\"cpus\": [\n"),
            "an outer array stays pretty"
        );
    }

    #[test]
    fn schema_fields() {
        let v: Value = serde_json::from_str(&render(&sample_report())).unwrap();
        assert_eq!(v["schema"], "kernel-delay/1");
        assert_eq!(v["pid"], 100);
        assert_eq!(v["comm"], "demo");
        assert_eq!(v["kernel"], "6.18.44");
        assert_eq!(v["start"], "2026-11-26T10:00:00.000000000Z");
        assert_eq!(v["end"], "2026-11-26T10:00:03.000000000Z");
        assert_eq!(v["duration_ns"], 3_000_000_000u64);
        assert_eq!(v["events"], 16);
        assert_eq!(v["lost_events"], 0);
        assert_eq!(v["stop_reason"], "duration");
        let thread = |tid: u64| {
            v["threads"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tid"] == tid)
                .unwrap()
        };
        let worker = thread(101);
        assert_eq!(worker["kernel_delay_ns"], 19_500, "its interrupts");
        assert_eq!(worker["comm"], "worker");
        assert_eq!(worker["exited"], false);
        let read = &worker["syscalls"][0];
        for field in [
            "nr", "name", "count", "total_ns", "min_ns", "mean_ns", "p50_ns", "p90_ns", "p99_ns",
            "max_ns",
        ] {
            assert!(read.get(field).is_some(), "missing {field}");
        }
        assert_eq!(read["name"], "read");
        assert_eq!(read["count"], 2);
        assert_eq!(
            (read["errors"].as_u64(), &read["errnos"]),
            (Some(1), &serde_json::json!({"EBADF": 1}))
        );
        let parts = [
            "oncpu_ns",
            "ready_ns",
            "sleeping_ns",
            "blocked_ns",
            "stopped_ns",
        ];
        let sum: u64 = parts.iter().map(|p| read[p].as_u64().unwrap()).sum();
        assert_eq!(sum, read["total_ns"].as_u64().unwrap());
        assert_eq!(
            read["ready_ns"].as_u64(),
            Some(
                read["ready_busy_cpu_ns"].as_u64().unwrap()
                    + read["ready_idle_cpu_ns"].as_u64().unwrap()
            )
        );
        let hist = read["hist"].as_array().unwrap();
        let in_hist: u64 = hist.iter().map(|b| b[2].as_u64().unwrap()).sum();
        assert_eq!(in_hist, 2);
        assert_eq!(hist[0], serde_json::json!([64, 127, 1]));
        assert_eq!(worker["unfinished"][0]["elapsed_ns"], 1_000_000_000u64);
        assert_eq!(thread(102)["exited"], true);
        for (section, stats) in [
            ("sched", "run"),
            ("sched", "ready"),
            ("sched", "ready_busy_cpu"),
            ("sched", "ready_idle_cpu"),
            ("sched", "sleep"),
            ("sched", "block"),
            ("sched", "stopped"),
        ] {
            assert!(
                worker[section][stats]["p99_ns"].is_u64(),
                "{section}.{stats}"
            );
        }
        for part in [
            "observed_ns",
            "running_ns",
            "ready_ns",
            "ready_busy_cpu_ns",
            "ready_idle_cpu_ns",
            "sleeping_ns",
            "blocked_ns",
            "stopped_ns",
        ] {
            assert!(worker["time"][part].is_u64(), "time.{part}");
        }
        let net_rx = &worker["softirqs"][1];
        assert_eq!(
            (net_rx["vec"].as_u64(), net_rx["name"].as_str()),
            (Some(3), Some("NET_RX"))
        );
        assert_eq!(net_rx["count"], 2);
        assert_eq!(worker["hardirqs"][0]["irq"], Value::Null);
        assert_eq!(worker["hardirqs"][0]["name"], "LOCAL_TIMER");
        assert_eq!(worker["hardirqs"][1]["irq"], 24);
        assert!(worker["hardirqs"][1]["p90_ns"].is_u64());
        assert_eq!(v["softirqs_system"]["cpus"], serde_json::json!([0, 1]));
        assert_eq!(v["softirqs_system"]["vectors"][0]["ksoftirqd_ns"], 8_000);
        assert_eq!(v["skipped_tracepoints"][0], "thermal_apic_entry");
        assert_eq!(
            v["processes"],
            serde_json::json!([
                { "pid": 200, "ppid": 100, "comm": "child", "forked": true, "exited": true },
                { "pid": 100, "ppid": 1, "comm": "demo", "forked": false, "exited": false }
            ])
        );
        assert_eq!(worker["pid"], 100);
        assert_eq!(worker["poll_intervals"]["count"], 1);
        assert_eq!(worker["poll_intervals"]["p90_ns"], 100_000);
        assert_eq!(thread(200)["pid"], 200);
    }
}
