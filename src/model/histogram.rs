//! A compact log-linear histogram of nanosecond values: exact below 256,
//! then 128 buckets per power of two (each under 0.8 % wide). Thousands of
//! short-lived threads each hold a dozen of these, so a series costs
//! nothing until its first value, a few bytes per distinct bucket while it
//! is small, and four bytes per bucket of its range once it is large.

/// Buckets per power of two, as a power of two: 2^7 = 128.
const SUB_BITS: u32 = 7;
const SUB_BUCKETS: u64 = 1 << SUB_BITS;
/// Values below this have a bucket of their own.
const EXACT_BELOW: u64 = 2 * SUB_BUCKETS;
/// Distinct buckets kept as a sorted list before switching to an array:
/// past this, the array over the range is about as small and faster.
const SPARSE_MAX: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct Histogram {
    buckets: Buckets,
    /// Multiples of 2^32 per bucket: a bucket's count that would pass
    /// u32::MAX starts again from 0 here (a series of billions of values).
    overflow: Option<Box<[(u16, u64)]>>,
}

#[derive(Debug, Clone)]
enum Buckets {
    /// (bucket, count), sorted by bucket (empty: allocates nothing).
    Sparse(Vec<(u16, u32)>),
    /// Counts of buckets first, first + 1, ...
    Dense { first: u16, counts: Vec<u32> },
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets::Sparse(Vec::new())
    }
}

/// The bucket of `value`.
fn bucket_of(value: u64) -> u16 {
    if value < EXACT_BELOW {
        return value as u16;
    }
    let shift = 63 - value.leading_zeros() - SUB_BITS; // >= 1
    let mantissa = value >> shift; // in [128, 256)
    (EXACT_BELOW + u64::from(shift - 1) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as u16
}

/// The largest value that falls in `bucket`.
fn highest_in(bucket: u16) -> u64 {
    let bucket = u64::from(bucket);
    if bucket < EXACT_BELOW {
        return bucket;
    }
    let shift = (bucket - EXACT_BELOW) / SUB_BUCKETS + 1;
    let mantissa = (bucket - EXACT_BELOW) % SUB_BUCKETS + SUB_BUCKETS;
    ((mantissa + 1) << shift).wrapping_sub(1)
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        self.add(bucket_of(value), 1);
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, count) in other.counts() {
            self.add(bucket, count);
        }
    }

    /// Adds `n` values to `bucket`.
    fn add(&mut self, bucket: u16, n: u64) {
        let count = self.slot(bucket);
        let sum = u64::from(*count) + n;
        *count = sum as u32; // the low 32 bits; multiples of 2^32 carry
        for _ in 0..sum >> 32 {
            self.carry(bucket);
        }
    }

    /// The count of `bucket`, made room for.
    fn slot(&mut self, bucket: u16) -> &mut u32 {
        if let Buckets::Sparse(list) = &self.buckets {
            let full = list.len() >= SPARSE_MAX;
            if full && list.binary_search_by_key(&bucket, |&(b, _)| b).is_err() {
                self.buckets = Buckets::dense_from(list, bucket);
            }
        }
        match &mut self.buckets {
            Buckets::Sparse(list) => {
                let i = match list.binary_search_by_key(&bucket, |&(b, _)| b) {
                    Ok(i) => i,
                    Err(i) => {
                        if list.is_empty() {
                            list.reserve_exact(1); // most series hold one bucket
                        }
                        list.insert(i, (bucket, 0));
                        i
                    }
                };
                &mut list[i].1
            }
            Buckets::Dense { first, counts } => {
                if bucket < *first || usize::from(bucket - *first) >= counts.len() {
                    widen(first, counts, bucket);
                }
                &mut counts[usize::from(bucket - *first)]
            }
        }
    }

    /// Adds 2^32 to `bucket`'s count.
    fn carry(&mut self, bucket: u16) {
        let mut overflow = self.overflow.take().map(Vec::from).unwrap_or_default();
        match overflow.iter_mut().find(|(b, _)| *b == bucket) {
            Some((_, extra)) => *extra += 1 << 32,
            None => overflow.push((bucket, 1 << 32)),
        }
        self.overflow = Some(overflow.into_boxed_slice());
    }

    /// (bucket, count) in bucket order.
    fn counts(&self) -> Vec<(u16, u64)> {
        let mut counts: Vec<(u16, u64)> = match &self.buckets {
            Buckets::Sparse(list) => list.iter().map(|&(b, n)| (b, u64::from(n))).collect(),
            Buckets::Dense { first, counts } => counts
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(i, &n)| (first + i as u16, u64::from(n)))
                .collect(),
        };
        for &(bucket, extra) in self.overflow.iter().flat_map(|o| o.iter()) {
            match counts.binary_search_by_key(&bucket, |&(b, _)| b) {
                Ok(i) => counts[i].1 += extra,
                Err(i) => counts.insert(i, (bucket, extra)),
            }
        }
        counts
    }

    /// The counts by power of two, as bcc's log2 histograms show them:
    /// [lowest, highest, count] for [0, 1], [2, 3], [4, 7], ..., the
    /// non-empty ones only. Each bucket here lies within one of them.
    pub fn log2_buckets(&self) -> Vec<[u64; 3]> {
        let mut powers: Vec<[u64; 3]> = Vec::new();
        for (bucket, count) in self.counts() {
            let log2 = 63 - highest_in(bucket).max(1).leading_zeros();
            let (lowest, highest) = match log2 {
                0 => (0, 1),
                _ => (1u64 << log2, (1u64 << log2) - 1 + (1u64 << log2)),
            };
            match powers.last_mut() {
                Some(last) if last[0] == lowest => last[2] += count,
                _ => powers.push([lowest, highest, count]),
            }
        }
        powers
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.counts().iter().map(|&(_, n)| n).sum()
    }

    /// The values at each quantile in `quantiles` (ascending, in [0, 1]):
    /// the highest value of the bucket that holds the value of rank
    /// ceil(q * len). None when empty.
    pub fn quantiles<const N: usize>(&self, quantiles: [f64; N]) -> Option<[u64; N]> {
        let counts = self.counts();
        let total: u64 = counts.iter().map(|&(_, n)| n).sum();
        if total == 0 {
            return None;
        }
        let mut values = [0; N];
        let (mut seen, mut next) = (0u64, counts.iter());
        let mut current = 0u16;
        for (value, q) in values.iter_mut().zip(quantiles) {
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            while seen < rank {
                let &(bucket, n) = next.next().expect("ranks stay within the total");
                seen += n;
                current = bucket;
            }
            *value = highest_in(current);
        }
        Some(values)
    }
}

impl Buckets {
    /// An array over the list's range and `extra`.
    fn dense_from(list: &[(u16, u32)], extra: u16) -> Buckets {
        let first = list.first().map_or(extra, |&(b, _)| b.min(extra));
        let last = list.last().map_or(extra, |&(b, _)| b.max(extra));
        let mut counts = vec![0u32; usize::from(last - first) + 1];
        for &(bucket, n) in list {
            counts[usize::from(bucket - first)] = n;
        }
        Buckets::Dense { first, counts }
    }
}

/// Grows the array to take `bucket`.
fn widen(first: &mut u16, counts: &mut Vec<u32>, bucket: u16) {
    if bucket < *first {
        let grow = usize::from(*first - bucket);
        counts.splice(0..0, std::iter::repeat_n(0, grow));
        *first = bucket;
    } else {
        counts.resize(usize::from(bucket - *first) + 1, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histograms_hold_both() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for v in 0..100u64 {
            a.record(v * 1_000);
            b.record(v * 7_919 + 3);
        }
        b.record(u64::MAX);
        let mut both = a.clone();
        both.merge(&b);
        let mut want = a.clone();
        for v in 0..100u64 {
            want.record(v * 7_919 + 3);
        }
        want.record(u64::MAX);
        assert_eq!(both.counts(), want.counts());
        assert_eq!(both.len(), 201);
        let mut empty = Histogram::default();
        empty.merge(&Histogram::default());
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn log2_buckets_are_powers_of_two_and_add_up() {
        let mut histogram = Histogram::default();
        let values = [0, 1, 2, 3, 4, 7, 8, 300, 511, 512, 1_000_000, u64::MAX];
        for v in values {
            histogram.record(v);
        }
        assert_eq!(
            histogram.log2_buckets(),
            vec![
                [0, 1, 2],
                [2, 3, 2],
                [4, 7, 2],
                [8, 15, 1],
                [256, 511, 2],
                [512, 1_023, 1],
                [524_288, 1_048_575, 1],
                [1 << 63, u64::MAX, 1],
            ]
        );
        let total: u64 = histogram.log2_buckets().iter().map(|b| b[2]).sum();
        assert_eq!(total, values.len() as u64);
        assert!(Histogram::default().log2_buckets().is_empty());
    }

    #[test]
    fn small_values_are_exact() {
        for v in [0, 1, 127, 128, 255] {
            assert_eq!(highest_in(bucket_of(v)), v);
        }
    }

    #[test]
    fn buckets_are_narrow_and_ordered() {
        let mut values: Vec<u64> = (0..64)
            .flat_map(|shift| {
                let power = 1u64 << shift;
                [power, power + 1, power + power / 2, power - 1 + (power - 1)]
            })
            .collect();
        values.sort_unstable();
        let mut previous = 0;
        for v in values {
            let bucket = bucket_of(v);
            let high = highest_in(bucket);
            assert!(high >= v, "{v}: bucket {bucket} ends at {high}");
            assert!(
                (high - v) as f64 <= v as f64 / 128.0,
                "{v} in a bucket up to {high}"
            );
            assert!(bucket >= previous, "{v}: bucket {bucket} after {previous}");
            previous = bucket;
        }
        assert_eq!(bucket_of(u64::MAX), 7423);
        assert_eq!(highest_in(7423), u64::MAX);
        assert_eq!(bucket_of(256), 256);
        assert_eq!(highest_in(256), 257);
    }

    #[test]
    fn empty_has_no_quantiles() {
        assert_eq!(Histogram::default().quantiles([0.5]), None);
        assert_eq!(Histogram::default().len(), 0);
    }

    #[test]
    fn quantiles_by_rank() {
        let mut h = Histogram::default();
        for v in [100, 200, 300] {
            h.record(v);
        }
        // 300 shares a bucket with 301.
        assert_eq!(
            h.quantiles([0.0, 0.34, 0.5, 0.67, 1.0]),
            Some([100, 200, 200, 301, 301])
        );
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn sparse_then_dense_keeps_every_count() {
        let mut h = Histogram::default();
        // More distinct buckets than the list holds, in both directions.
        for v in (1_000..3_000).rev().chain(0..10).chain([5_000_000, 7]) {
            h.record(v);
        }
        assert!(matches!(h.buckets, Buckets::Dense { .. }));
        assert_eq!(h.len(), 2_012);
        let counts = h.counts();
        assert_eq!(counts.iter().find(|(b, _)| *b == 7), Some(&(7, 2)));
        assert_eq!(h.quantiles([1.0]), Some([highest_in(bucket_of(5_000_000))]));
        assert_eq!(h.quantiles([0.0]), Some([0]));
    }

    #[test]
    fn a_bucket_can_hold_more_than_u32_max() {
        let mut h = Histogram::default();
        h.record(42);
        let Buckets::Sparse(list) = &mut h.buckets else {
            unreachable!()
        };
        list[0].1 = u32::MAX - 1;
        h.record(42);
        h.record(42); // carried: the bucket holds 0 + 2^32
        assert_eq!(h.len(), u64::from(u32::MAX) + 1);
        h.record(9);
        assert_eq!(h.quantiles([0.0, 1.0]), Some([9, 42]));
        h.record(42);
        assert_eq!(h.len(), u64::from(u32::MAX) + 3);
        // The same in an array of buckets, whose zero counts are skipped.
        let mut dense = Histogram::default();
        for v in 0..100 {
            dense.record(v);
        }
        let Buckets::Dense { counts, .. } = &mut dense.buckets else {
            unreachable!()
        };
        counts[50] = u32::MAX;
        dense.record(50);
        assert_eq!(dense.len(), 99 + (1 << 32));
        assert_eq!(dense.quantiles([0.5]), Some([50]));
    }

    #[test]
    fn a_small_series_stays_small() {
        let mut h = Histogram::default();
        h.record(70);
        let Buckets::Sparse(list) = &h.buckets else {
            unreachable!()
        };
        assert_eq!(list.capacity(), 1);
    }
}
