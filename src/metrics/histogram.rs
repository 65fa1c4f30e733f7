//! Fixed-bucket histograms: a worker counts each request's duration into atomics (no lock on
//! the request path), sends a snapshot with its heartbeat, and the master adds the snapshots
//! of its workers (and of the workers that have exited) into one cumulative histogram.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Upper bounds, in seconds, of the request duration buckets (Prometheus' defaults).
pub const REQUEST_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds, in seconds, for slower things: a worker's boot, a reload.
pub const SLOW_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A histogram's counts: one per bucket (not cumulative) plus the overflow bucket, the sum of
/// the observations in microseconds, and their count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Observations per bucket; `len() == bounds + 1` once anything was observed.
    pub buckets: Vec<u64>,
    /// Sum of the observations, in microseconds.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Records one observation of `us` microseconds against `bounds` (in seconds).
    pub fn observe(&mut self, bounds: &[f64], us: u64) {
        if self.buckets.len() != bounds.len() + 1 {
            self.buckets = vec![0; bounds.len() + 1];
        }
        self.buckets[bucket(bounds, us)] += 1;
        self.sum_us += us;
        self.count += 1;
    }

    /// Adds another histogram over the same bounds.
    pub fn add(&mut self, other: &Histogram) {
        if other.buckets.is_empty() {
            return;
        }
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_us += other.sum_us;
        self.count += other.count;
    }

    /// `(upper bound, cumulative count)` per bucket, `+Inf` last, as Prometheus exposes them.
    pub fn cumulative(&self, bounds: &[f64]) -> Vec<(Option<f64>, u64)> {
        let mut total = 0;
        (0..=bounds.len())
            .map(|i| {
                total += self.buckets.get(i).copied().unwrap_or(0);
                (bounds.get(i).copied(), total)
            })
            .collect()
    }
}

fn bucket(bounds: &[f64], us: u64) -> usize {
    let secs = us as f64 / 1e6;
    bounds
        .iter()
        .position(|b| secs <= *b)
        .unwrap_or(bounds.len())
}

/// A worker's request-duration histogram, counted with atomics.
#[derive(Debug)]
pub struct AtomicHistogram {
    buckets: [AtomicU64; REQUEST_BUCKETS.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl AtomicHistogram {
    /// Records a request of `us` microseconds.
    pub fn observe(&self, us: u64) {
        self.buckets[bucket(&REQUEST_BUCKETS, us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_us: self.sum_us.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_sum_and_merge() {
        let a = AtomicHistogram::default();
        a.observe(3_000); // 3 ms
        a.observe(200_000); // 200 ms
        a.observe(20_000_000); // 20 s: overflow
        let mut h = a.snapshot();
        assert_eq!(h.count, 3);
        let c = h.cumulative(&REQUEST_BUCKETS);
        assert_eq!(c[0], (Some(0.005), 1));
        assert_eq!(c[5], (Some(0.25), 2));
        assert_eq!(c.last(), Some(&(None, 3)));
        h.add(&a.snapshot());
        assert_eq!((h.count, h.sum_us), (6, 2 * 20_203_000));
        let mut slow = Histogram::default();
        slow.observe(&SLOW_BUCKETS, 700_000);
        assert_eq!(slow.cumulative(&SLOW_BUCKETS)[4], (Some(1.0), 1));
        assert_eq!(slow.cumulative(&SLOW_BUCKETS)[3], (Some(0.5), 0));
    }
}
