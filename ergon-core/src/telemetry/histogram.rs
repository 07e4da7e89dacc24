//! A lock-free histogram with fixed buckets, for one worker's durations and batch sizes.
//!
//! Each worker owns its histograms, so recording is three uncontended atomic adds; the
//! exporters merge the workers' [`HistogramSnapshot`]s when they read.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The bucket bounds of a kind of histogram, chosen by type so that a worker's stats can
/// be built with `Default`.
pub trait Bounds {
    /// Upper bounds (inclusive), ascending; one more bucket holds what is above the last.
    const BOUNDS: &'static [u64];
}

/// Durations in microseconds, 100 µs to 60 s.
#[derive(Debug)]
pub struct Micros;

impl Bounds for Micros {
    const BOUNDS: &'static [u64] = &[
        100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
        1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
    ];
}

/// Transactions per fetch.
#[derive(Debug)]
pub struct BatchSize;

impl Bounds for BatchSize {
    const BOUNDS: &'static [u64] = &[1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000];
}

/// Counts of values at or below each bound of `B`, plus one bucket above the last.
#[derive(Debug)]
pub struct Histogram<B> {
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    bounds: PhantomData<B>,
}

/// A point-in-time copy of one or more [`Histogram`]s with the same bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// The upper bounds of the buckets but the last (which is unbounded).
    pub bounds: &'static [u64],
    /// Values per bucket (not cumulative); one more than `bounds`.
    pub buckets: Vec<u64>,
    /// Sum of the recorded values.
    pub sum: u64,
}

impl<B: Bounds> Default for Histogram<B> {
    fn default() -> Self {
        Self {
            buckets: (0..=B::BOUNDS.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            bounds: PhantomData,
        }
    }
}

impl<B: Bounds> Histogram<B> {
    /// Records one value.
    #[inline]
    pub fn record(&self, value: u64) {
        let bucket = B::BOUNDS.partition_point(|&bound| bound < value);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    /// Reads the buckets.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: B::BOUNDS,
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum: self.sum.load(Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds `other` (same bounds) into `self`.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        debug_assert_eq!(self.bounds, other.bounds);
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.sum += other.sum;
    }

    /// `(bound, values at or below it)` per bucket, the last with `None` (+Inf), as
    /// Prometheus and OTLP want them.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let mut total = 0;
        self.buckets.iter().enumerate().map(move |(i, count)| {
            total += count;
            (self.bounds.get(i).copied(), total)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        struct Two;
        impl Bounds for Two {
            const BOUNDS: &'static [u64] = &[10, 100];
        }
        let h = Histogram::<Two>::default();
        for v in [0, 10, 11, 100, 101, 5_000] {
            h.record(v);
        }
        let snap = h.snapshot();
        assert_eq!(snap.buckets, vec![2, 2, 2]);
        assert_eq!(snap.sum, 5_222);
        assert_eq!(snap.count(), 6);
        let cumulative: Vec<_> = snap.cumulative().collect();
        assert_eq!(cumulative, vec![(Some(10), 2), (Some(100), 4), (None, 6)]);
        let mut merged = snap.clone();
        merged.merge(&snap);
        assert_eq!(merged.buckets, vec![4, 4, 4]);
    }
}
