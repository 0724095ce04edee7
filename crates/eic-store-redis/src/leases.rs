//! Tokens a node takes from a shared bucket ahead of use.
//!
//! Without leases a busy bucket costs one Redis round trip per request,
//! which on Redis is most of a throttled request's latency and CPU. A node
//! that has seen demand for a bucket takes several tokens in one round trip
//! and spends the rest locally.
//!
//! Leasing never admits more than the shared bucket holds: every token spent
//! was first taken from Redis. What it costs is the other direction: tokens
//! one node leased and has not spent are lost to the other nodes for at most
//! [`LEASE_MS`]. So a lease is at most a tenth of a second of the bucket's
//! rate, an eighth of its burst and [`MOST`] tokens, and it grows only with
//! the demand this node saw in the last window: a quiet bucket, or one whose
//! rate is low (a single-use bucket of one, the default join bucket), is
//! taken one token at a time, exactly as without leases.
//!
//! A busy bucket's lease is taken again before it runs out: the request
//! that spends it below half starts a refill in the background
//! ([`Take::SpentAndRefill`]), so in steady state no request waits for
//! Redis. A node then holds at most one and a half leases.

use std::collections::HashMap;
use std::sync::Mutex;

use eic_store::BucketRate;

/// How long a leased token may be spent after it was taken.
pub const LEASE_MS: u64 = 100;
/// The largest lease, whatever the bucket.
pub const MOST: u32 = 256;
/// Buckets tracked at once; past this, stale ones are dropped, and if all
/// are live a new bucket goes without leases.
const TRACKED: usize = 65_536;

/// What to do for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// A leased token was spent: admitted, no round trip.
    Spent,
    /// As [`Take::Spent`], and the lease runs low: take this many more in
    /// the background, then say [`Leases::refilled`].
    SpentAndRefill(u32),
    /// Take up to this many tokens from the shared bucket.
    Ask(u32),
}

#[derive(Default)]
pub struct Leases {
    buckets: Mutex<HashMap<String, Lease>>,
}

#[derive(Clone, Copy)]
struct Lease {
    tokens: u32,
    taken_ms: u64,
    window_ms: u64,
    demand: u32,
    previous_demand: u32,
    /// A background refill is on its way.
    refilling: bool,
}

impl Lease {
    fn spendable(&self, now_ms: u64) -> bool {
        self.tokens > 0 && self.taken_ms <= now_ms && now_ms < self.taken_ms + LEASE_MS
    }

    fn recent(&self, now_ms: u64) -> bool {
        self.window_ms <= now_ms && now_ms < self.window_ms + 2 * LEASE_MS
    }
}

/// The largest lease worth taking of a bucket of `rate`.
fn most(rate: BucketRate) -> u32 {
    let tokens = (rate.rate * LEASE_MS as f64 / 1000.0)
        .min(rate.burst / 8.0)
        .min(f64::from(MOST))
        .floor();
    // `as` saturates; NaN (no valid config has it) becomes 0, then 1.
    (tokens as u32).max(1)
}

impl Leases {
    /// Spends a token of `name` leased earlier, or says how many to take.
    pub fn take(&self, name: &str, rate: BucketRate, now_ms: u64) -> Take {
        let most = most(rate);
        if most == 1 {
            return Take::Ask(1);
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let known = buckets.contains_key(name);
        if !known && buckets.len() >= TRACKED {
            buckets.retain(|_, lease| lease.spendable(now_ms) || lease.recent(now_ms));
            if buckets.len() >= TRACKED {
                return Take::Ask(1);
            }
        }
        // The name is copied only for a bucket seen for the first time.
        if !known {
            buckets.insert(
                name.to_owned(),
                Lease {
                    tokens: 0,
                    taken_ms: 0,
                    window_ms: now_ms,
                    demand: 0,
                    previous_demand: 0,
                    refilling: false,
                },
            );
        }
        let Some(lease) = buckets.get_mut(name) else {
            return Take::Ask(1);
        };
        if !(lease.window_ms <= now_ms && now_ms < lease.window_ms + LEASE_MS) {
            lease.previous_demand = if lease.recent(now_ms) {
                lease.demand
            } else {
                0
            };
            lease.demand = 0;
            lease.window_ms = now_ms;
        }
        lease.demand = lease.demand.saturating_add(1);
        let wanted = lease.demand.max(lease.previous_demand).clamp(1, most);
        if lease.spendable(now_ms) {
            lease.tokens -= 1;
            if !lease.refilling && wanted > 1 && lease.tokens < wanted / 2 {
                lease.refilling = true;
                return Take::SpentAndRefill(wanted);
            }
            return Take::Spent;
        }
        lease.tokens = 0;
        Take::Ask(wanted)
    }

    /// Keeps the `taken` tokens of a background refill asked at `now_ms`
    /// (0 when Redis gave none or could not be reached).
    pub fn refilled(&self, name: &str, taken: u32, now_ms: u64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lease) = buckets.get_mut(name) {
            lease.refilling = false;
            if taken > 0 {
                let kept = if lease.spendable(now_ms) {
                    lease.tokens
                } else {
                    0
                };
                lease.tokens = kept.saturating_add(taken);
                lease.taken_ms = now_ms;
            }
        }
    }

    /// Keeps all but one of `granted` tokens taken at `now_ms` (the caller
    /// spends that one).
    pub fn granted(&self, name: &str, granted: u32, now_ms: u64) {
        if granted <= 1 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lease) = buckets.get_mut(name) {
            let kept = if lease.spendable(now_ms) {
                lease.tokens
            } else {
                0
            };
            lease.tokens = kept.saturating_add(granted - 1);
            lease.taken_ms = now_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BUSY: BucketRate = BucketRate {
        rate: 1000.0,
        burst: 2000.0,
    };

    fn spent(take: Take) -> bool {
        matches!(take, Take::Spent | Take::SpentAndRefill(_))
    }

    /// Takes one token as the store does, from a shared bucket of `pool`.
    fn take(leases: &Leases, pool: &mut u32, rate: BucketRate, now_ms: u64) -> bool {
        match leases.take("b", rate, now_ms) {
            Take::Spent => true,
            Take::SpentAndRefill(wanted) => {
                let taken = wanted.min(*pool);
                *pool -= taken;
                leases.refilled("b", taken, now_ms);
                true
            }
            Take::Ask(wanted) => {
                let granted = wanted.min(*pool);
                *pool -= granted;
                leases.granted("b", granted, now_ms);
                granted >= 1
            }
        }
    }

    #[test]
    fn a_quiet_or_slow_bucket_is_taken_one_token_at_a_time() {
        let leases = Leases::default();
        let one = BucketRate {
            rate: 1.0,
            burst: 1.0,
        };
        let default_joins = BucketRate {
            rate: 5.0,
            burst: 50.0,
        };
        for now in 0..50 {
            assert_eq!(leases.take("once", one, now), Take::Ask(1));
            assert_eq!(leases.take("joins", default_joins, now), Take::Ask(1));
        }
        assert!(leases.buckets.lock().unwrap().is_empty(), "nothing tracked");
        // A busy bucket's first request, and one after a quiet spell.
        assert_eq!(leases.take("b", BUSY, 1_000), Take::Ask(1));
        assert_eq!(leases.take("b", BUSY, 10_000), Take::Ask(1));
    }

    #[test]
    fn leases_grow_with_demand_up_to_the_bucket_bound() {
        let leases = Leases::default();
        let mut pool = u32::MAX;
        let mut asked = Vec::new();
        for _ in 0..1_000 {
            if let Take::Ask(n) = leases.take("b", BUSY, 5) {
                asked.push(n);
                let granted = n.min(pool);
                pool -= granted;
                leases.granted("b", granted, 5);
            }
        }
        // A tenth of a second at 1,000/s.
        assert_eq!(asked.iter().max(), Some(&100));
        assert!(asked.len() < 30, "round trips: {}", asked.len());
        assert_eq!(
            u32::MAX - pool,
            1_000 + leases.buckets.lock().unwrap()["b"].tokens
        );
        let small = BucketRate {
            rate: 1e9,
            burst: 80.0,
        };
        let capped = Leases::default();
        let mut most_asked = 0;
        for _ in 0..100 {
            if let Take::Ask(n) = capped.take("b", small, 5) {
                most_asked = most_asked.max(n);
                capped.granted("b", n, 5);
            }
        }
        assert_eq!(most_asked, 10, "an eighth of the burst");
        assert_eq!(
            most(BucketRate {
                rate: 1e12,
                burst: 1e12
            }),
            MOST
        );
    }

    #[test]
    fn a_busy_lease_is_refilled_before_it_runs_out() {
        let leases = Leases::default();
        let mut pool = u32::MAX;
        let (mut waited, mut refills) = (0, 0);
        // 10,000 requests a second for one second.
        for i in 0..10_000u64 {
            let now = 1_000 + i / 10;
            match leases.take("b", BUSY, now) {
                Take::Spent => {}
                Take::SpentAndRefill(n) => {
                    refills += 1;
                    let taken = n.min(pool);
                    pool -= taken;
                    leases.refilled("b", taken, now);
                }
                Take::Ask(n) => {
                    waited += 1;
                    let taken = n.min(pool);
                    pool -= taken;
                    leases.granted("b", taken, now);
                }
            }
        }
        assert!(waited < 20, "requests that waited for Redis: {waited}");
        assert!(refills > 50, "refills: {refills}");
        let held = leases.buckets.lock().unwrap()["b"].tokens;
        assert!(held <= 150, "at most one and a half leases held: {held}");
        // One refill at a time: until it lands, spending asks for no other.
        let one = Leases::default();
        for _ in 0..3 {
            one.take("b", BUSY, 5);
        }
        one.granted("b", 3, 5);
        assert_eq!(one.take("b", BUSY, 5), Take::SpentAndRefill(4));
        assert_eq!(
            one.take("b", BUSY, 5),
            Take::Spent,
            "the last one, no second refill"
        );
        assert_eq!(
            one.take("b", BUSY, 5),
            Take::Ask(6),
            "out before the refill landed"
        );
        one.refilled("b", 4, 5);
        assert_eq!(one.take("b", BUSY, 5), Take::Spent);
    }

    #[test]
    fn a_lease_is_spent_only_within_its_window_and_never_after_the_clock_goes_back() {
        let leases = Leases::default();
        for _ in 0..2 {
            leases.take("b", BUSY, 100);
        }
        assert_eq!(leases.take("b", BUSY, 100), Take::Ask(3));
        leases.granted("b", 3, 100);
        assert!(spent(leases.take("b", BUSY, 120)));
        assert!(
            matches!(leases.take("b", BUSY, 99), Take::Ask(_)),
            "clock went back: not spent"
        );
        assert!(
            matches!(leases.take("b", BUSY, 120), Take::Ask(_)),
            "and dropped"
        );
        assert_eq!(leases.take("b", BUSY, 150), Take::Ask(3));
        leases.granted("b", 3, 150);
        assert!(spent(leases.take("b", BUSY, 249)));
        assert!(
            matches!(leases.take("b", BUSY, 250), Take::Ask(_)),
            "expired"
        );
    }

    #[test]
    fn tracking_is_bounded() {
        let leases = Leases::default();
        for i in 0..TRACKED {
            leases.take(&format!("b{i}"), BUSY, 0);
        }
        assert_eq!(leases.take("late", BUSY, 1), Take::Ask(1));
        assert_eq!(leases.buckets.lock().unwrap().len(), TRACKED);
        // Later the stale ones make room.
        assert_eq!(leases.take("late", BUSY, 10_000), Take::Ask(1));
        assert_eq!(leases.buckets.lock().unwrap().len(), 1);
    }

    proptest! {
        /// Whatever the timing, a node admits no more than it took from the
        /// shared bucket, less what it still holds.
        #[test]
        fn never_admits_more_than_the_shared_bucket_gave(
            steps in proptest::collection::vec(0u64..30, 1..400),
            pool in 0u32..300,
        ) {
            let leases = Leases::default();
            let mut left = pool;
            let mut now = 1_000;
            let mut admitted = 0u32;
            for step in steps {
                now += step;
                if take(&leases, &mut left, BUSY, now) {
                    admitted += 1;
                }
            }
            let held = leases.buckets.lock().unwrap().get("b").map_or(0, |l| l.tokens);
            prop_assert!(admitted + held <= pool - left);
        }
    }
}
