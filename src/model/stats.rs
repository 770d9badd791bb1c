//! Latency distributions: exact count, total, min and max, and percentiles
//! from a histogram.

use serde::Serialize;

use crate::model::histogram::Histogram;

/// The summary of one latency series, as reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub count: u64,
    pub total_ns: u64,
    pub min_ns: u64,
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    /// [lowest_ns, highest_ns, count] per power of two, non-empty ones
    /// only: the sampled values (not those known by their totals only).
    pub hist: Vec<[u64; 3]>,
}

/// Accumulates one series of durations in nanoseconds.
#[derive(Debug, Clone)]
pub struct Distribution {
    count: u64,
    total_ns: u64,
    min_ns: u64,
    max_ns: u64,
    histogram: Histogram,
}

impl Default for Distribution {
    fn default() -> Self {
        Self {
            count: 0,
            total_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            histogram: Histogram::default(),
        }
    }
}

impl Distribution {
    pub fn record(&mut self, ns: u64) {
        self.add_exact(1, ns, ns, ns);
        self.histogram.record(ns);
    }

    /// Values known only by their count, total, min and max (calls the
    /// kernel kept in its spill map): exact in those, not in percentiles.
    pub fn add_unsampled(&mut self, count: u64, total_ns: u64, min_ns: u64, max_ns: u64) {
        if count > 0 {
            self.add_exact(count, total_ns, min_ns, max_ns);
        }
    }

    fn add_exact(&mut self, count: u64, total_ns: u64, min_ns: u64, max_ns: u64) {
        self.count += count;
        self.total_ns = self.total_ns.saturating_add(total_ns);
        self.min_ns = self.min_ns.min(min_ns);
        self.max_ns = self.max_ns.max(max_ns);
    }

    /// Both series as one.
    pub fn merged(&self, other: &Distribution) -> Distribution {
        let mut both = self.clone();
        if other.count > 0 {
            both.add_exact(other.count, other.total_ns, other.min_ns, other.max_ns);
            both.histogram.merge(&other.histogram);
        }
        both
    }

    /// How many values went in through [`Distribution::add_unsampled`].
    pub fn unsampled(&self) -> u64 {
        self.count - self.histogram.len()
    }

    pub fn summary(&self) -> Stats {
        if self.count == 0 {
            return Stats::default();
        }
        // A bucket's highest value is within 1 % of every value in it; the
        // exact extremes are known, so keep percentiles inside them. With
        // no sample at all (everything unsampled), the extremes bound them.
        let [p50, p90, p99] = self
            .histogram
            .quantiles([0.50, 0.90, 0.99])
            .unwrap_or([self.max_ns; 3])
            .map(|ns| ns.clamp(self.min_ns, self.max_ns));
        Stats {
            count: self.count,
            total_ns: self.total_ns,
            min_ns: self.min_ns,
            mean_ns: self.total_ns / self.count,
            p50_ns: p50,
            p90_ns: p90,
            p99_ns: p99,
            max_ns: self.max_ns,
            hist: self.histogram.log2_buckets(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_percentile(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    fn assert_within_one_percent(got: u64, want: u64) {
        let error = (got as f64 - want as f64).abs() / want as f64;
        assert!(error <= 0.01, "got {got}, want {want} (error {error:.4})");
    }

    #[test]
    fn empty_series_is_all_zero() {
        assert_eq!(Distribution::default().summary(), Stats::default());
    }

    #[test]
    fn exact_fields() {
        let mut d = Distribution::default();
        for ns in [300, 100, 200] {
            d.record(ns);
        }
        let s = d.summary();
        assert_eq!(
            (s.count, s.total_ns, s.min_ns, s.max_ns, s.mean_ns),
            (3, 600, 100, 300, 200)
        );
        assert_eq!(s.p50_ns, 200);
    }

    #[test]
    fn single_value_percentiles_are_exact() {
        let mut d = Distribution::default();
        d.record(1_234_567);
        let s = d.summary();
        assert_eq!(
            (s.p50_ns, s.p90_ns, s.p99_ns),
            (1_234_567, 1_234_567, 1_234_567)
        );
    }

    #[test]
    fn percentiles_within_one_percent_over_wide_range() {
        // A deterministic spread from 1 µs to ~10 s.
        let mut values: Vec<u64> = (0..20_000u64)
            .map(|i| 1_000 + (i * i * 7_919) % 10_000_000_000)
            .collect();
        let mut d = Distribution::default();
        for &v in &values {
            d.record(v);
        }
        values.sort_unstable();
        let s = d.summary();
        assert_within_one_percent(s.p50_ns, exact_percentile(&values, 0.50));
        assert_within_one_percent(s.p90_ns, exact_percentile(&values, 0.90));
        assert_within_one_percent(s.p99_ns, exact_percentile(&values, 0.99));
        assert_eq!(s.max_ns, *values.last().unwrap());
        assert_eq!(s.min_ns, values[0]);
    }

    #[test]
    fn unsampled_values_are_exact_in_all_but_percentiles() {
        let mut d = Distribution::default();
        for ns in [100, 200, 300] {
            d.record(ns);
        }
        d.add_unsampled(2, 1_050, 50, 1_000);
        d.add_unsampled(0, 0, 0, 0);
        let s = d.summary();
        assert_eq!(
            (s.count, s.total_ns, s.min_ns, s.max_ns, s.mean_ns),
            (5, 1_650, 50, 1_000, 330)
        );
        assert_eq!(s.p50_ns, 200, "percentiles of the sampled values");
        assert_eq!(d.unsampled(), 2);

        let mut only = Distribution::default();
        only.add_unsampled(3, 30, 5, 15);
        let s = only.summary();
        assert_eq!((s.count, s.p50_ns, s.p99_ns), (3, 15, 15));
    }

    #[test]
    fn merged_series_are_one() {
        let (mut a, mut b, mut both) = Default::default();
        for ns in [100, 200, 300] {
            Distribution::record(&mut a, ns);
            Distribution::record(&mut both, ns);
        }
        for ns in [5, 5_000] {
            Distribution::record(&mut b, ns);
            Distribution::record(&mut both, ns);
        }
        let merged: Distribution = a.merged(&b);
        assert_eq!(merged.summary(), both.summary());
        assert_eq!(a.merged(&Distribution::default()).summary(), a.summary());
        assert_eq!(Distribution::default().merged(&b).summary(), b.summary());
    }

    #[test]
    fn huge_values_saturate_instead_of_failing() {
        let mut d = Distribution::default();
        d.record(u64::MAX / 2);
        d.record(u64::MAX / 2);
        d.record(u64::MAX / 2);
        let s = d.summary();
        assert_eq!(s.count, 3);
        assert_eq!(s.total_ns, u64::MAX);
    }
}
