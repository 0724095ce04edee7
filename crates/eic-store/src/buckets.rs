//! Token buckets for throttling, in memory.
//!
//! A bucket untouched for long enough is full, which is the same as not
//! existing; so when the map grows past its bound, full buckets are dropped.
//! Memory is thereby bounded by how many buckets are being drained at once,
//! whatever names callers make up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::clock::unix_millis;
use crate::BucketRate;

/// Past this many buckets, full ones are swept before a new one is made.
const SWEEP_ABOVE: usize = 65_536;

#[derive(Default)]
pub struct TokenBuckets {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_ms: u64,
}

impl Bucket {
    fn refill(&mut self, rate: BucketRate, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.rate).min(rate.burst);
        self.updated_ms = self.updated_ms.max(now_ms);
    }
}

impl TokenBuckets {
    pub fn take(&self, name: &str, rate: BucketRate, now: SystemTime) -> bool {
        let now_ms = unix_millis(now);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = buckets.get_mut(name) {
            bucket.refill(rate, now_ms);
            return take_one(bucket);
        }
        if buckets.len() >= SWEEP_ABOVE {
            buckets.retain(|_, b| {
                b.refill(rate, now_ms);
                b.tokens < rate.burst
            });
        }
        let mut bucket = Bucket {
            tokens: rate.burst,
            updated_ms: now_ms,
        };
        let taken = take_one(&mut bucket);
        buckets.insert(name.to_owned(), bucket);
        taken
    }

    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn take_one(bucket: &mut Bucket) -> bool {
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const RATE: BucketRate = BucketRate {
        rate: 2.0,
        burst: 3.0,
    };

    #[test]
    fn burst_then_rate() {
        let buckets = TokenBuckets::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!((0..3).all(|_| buckets.take("p", RATE, t0)));
        assert!(!buckets.take("p", RATE, t0));
        // Another bucket is untouched by the first one's flood.
        assert!(buckets.take("q", RATE, t0));
        assert!(!buckets.take("p", RATE, t0 + Duration::from_millis(400)));
        assert!(buckets.take("p", RATE, t0 + Duration::from_millis(500)));
        // Refill stops at the burst size.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| buckets.take("p", RATE, later)));
        assert!(!buckets.take("p", RATE, later));
    }

    #[test]
    fn a_clock_step_back_does_not_mint_tokens() {
        let buckets = TokenBuckets::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!((0..3).all(|_| buckets.take("p", RATE, t0)));
        assert!(!buckets.take("p", RATE, t0 - Duration::from_secs(10)));
        assert!(!buckets.take("p", RATE, t0));
    }

    #[test]
    fn full_buckets_are_swept_when_the_map_is_large() {
        let buckets = TokenBuckets::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        for n in 0..SWEEP_ABOVE {
            buckets.take(&format!("b{n}"), RATE, t0);
        }
        buckets.take("drained", RATE, t0);
        buckets.take("drained", RATE, t0);
        // Two seconds on, every bucket that took one token is full again.
        buckets.take("new", RATE, t0 + Duration::from_secs(2));
        assert_eq!(buckets.len(), 1);
    }
}
