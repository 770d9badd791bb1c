//! Log2 latency histograms in text, laid out as bcc's tools print them:
//! one line per power of two, from the lowest non-empty one to the
//! highest, with a bar of stars scaled to the fullest.

use std::fmt::Write as _;

/// Width of the fullest bar.
const BAR: u64 = 40;

/// Appends the histogram of `buckets` ([lowest, highest, count] per power
/// of two, ascending, non-empty ones only), each line after `indent`.
pub fn render(out: &mut String, indent: &str, buckets: &[[u64; 3]]) {
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return;
    };
    let max = buckets.iter().map(|b| b[2]).max().unwrap_or(1).max(1);
    let width = last[1].to_string().len();
    let _ = writeln!(
        out,
        "{indent}{:>width$}    {:<width$} : count    distribution",
        "ns", ""
    );
    let mut counts = buckets.iter().peekable();
    let mut lowest = first[0];
    loop {
        let highest = if lowest == 0 { 1 } else { lowest - 1 + lowest };
        let count = match counts.peek() {
            Some(bucket) if bucket[0] == lowest => counts.next().map_or(0, |b| b[2]),
            _ => 0,
        };
        let stars = (count.saturating_mul(BAR) / max) as usize;
        let _ = writeln!(
            out,
            "{indent}{lowest:>width$} -> {highest:<width$} : {count:<8} |{:<bar$}|",
            "*".repeat(stars),
            bar = BAR as usize
        );
        if highest >= last[1] {
            break;
        }
        lowest = highest + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_the_lowest_to_the_highest_power() {
        let mut out = String::new();
        render(&mut out, "  ", &[[4, 7, 2], [16, 31, 4]]);
        assert_eq!(
            out,
            [
                "  ns       : count    distribution",
                "   4 -> 7  : 2        |********************                    |",
                "   8 -> 15 : 0        |                                        |",
                "  16 -> 31 : 4        |****************************************|",
                "",
            ]
            .join("\n")
        );
    }

    #[test]
    fn from_zero_and_up_to_the_last_power() {
        let mut out = String::new();
        render(&mut out, "", &[[0, 1, 1], [1 << 63, u64::MAX, 1]]);
        assert_eq!(out.lines().count(), 1 + 64);
        assert!(out
            .lines()
            .nth(1)
            .unwrap()
            .trim_start()
            .starts_with("0 -> 1 "));
        assert!(out.lines().last().unwrap().contains(&u64::MAX.to_string()));
        let mut empty = String::new();
        render(&mut empty, "", &[]);
        assert!(empty.is_empty());
    }
}
