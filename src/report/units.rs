//! Short forms of durations and shares for the lines people read first
//! (the tables keep exact nanoseconds).

/// `part` of `whole` as `12.5%`; `-` when there is no whole.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_string();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// A duration in the unit that reads best: `850 ns`, `12.3 us`,
/// `4.56 ms`, `1.234 s`.
pub fn human_ns(ns: u64) -> String {
    let value = ns as f64;
    // What would round up to 1000 of a unit reads as 1 of the next.
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..999_500 => format!("{} us", significant(value / 1e3)),
        999_500..999_500_000 => format!("{} ms", significant(value / 1e6)),
        _ => format!("{:.3} s", value / 1e9),
    }
}

/// Three significant digits for a value in [1, 999.5).
fn significant(value: f64) -> String {
    match value {
        v if v < 10.0 => format!("{v:.2}"),
        v if v < 100.0 => format!("{v:.1}"),
        v => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(percent(1, 8), "12.5%");
        assert_eq!(percent(0, 8), "0.0%");
        assert_eq!(percent(1, 0), "-");
    }

    #[test]
    fn durations_in_the_unit_that_reads_best() {
        assert_eq!(human_ns(0), "0 ns");
        assert_eq!(human_ns(999), "999 ns");
        assert_eq!(human_ns(1_000), "1.00 us");
        assert_eq!(human_ns(12_345), "12.3 us");
        assert_eq!(human_ns(4_560_000), "4.56 ms");
        assert_eq!(human_ns(999_400_000), "999 ms");
        assert_eq!(human_ns(999_900), "1.00 ms");
        assert_eq!(human_ns(999_600_000), "1.000 s");
        assert_eq!(human_ns(1_234_000_000), "1.234 s");
        assert_eq!(human_ns(u64::MAX), "18446744073.710 s");
    }
}
