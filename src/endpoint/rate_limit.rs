//! Rate limiting of the trigger endpoint, in budgets a flood cannot turn against real callers.
//!
//! Each budget is a token bucket: `rate` calls a second, bursts of twice that. They are kept
//! apart so that no caller can spend another's:
//! - a call to a known Webhook spends the bucket of that (Webhook, client) pair. A client that
//!   floods a Webhook, even one that knows its URL, empties only its own bucket: the provider's
//!   deliveries, which come from the provider's addresses, keep theirs, and other Webhooks are
//!   untouched. (One bucket per Webhook would let anyone holding the URL of a signed Webhook,
//!   which alone deploys nothing, shut its real deliveries out.)
//! - a call to an unknown path spends its client's bucket of unknown paths, which nothing else
//!   spends: scanning for ids or calling a stale URL never makes a real delivery answer 429.
//!
//! Each set remembers the buckets of at most [`MAX_BUCKETS`] keys and forgets the least
//! recently used one in O(1). A forgotten key starts again with a full bucket, so forgetting
//! can only let a call through, never refuse one.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Instant;

use lru::LruCache;

/// Keys remembered per set of buckets, bounding memory (a few MiB at most).
pub const MAX_BUCKETS: NonZeroUsize = NonZeroUsize::new(10_000).expect("not zero");

/// The endpoint's budgets: `rate` calls per second per client for each Webhook, and as many
/// for all unknown paths together.
pub struct RateLimiter {
    rate: f64,
    unknown: Buckets<IpAddr>,
    webhooks: Buckets<(String, IpAddr)>,
}

impl RateLimiter {
    /// `rate` calls per second per client and Webhook (bursts of twice that); 0 disables the limit.
    pub fn new(rate: u32) -> Self {
        Self::with_capacity(rate, MAX_BUCKETS)
    }

    fn with_capacity(rate: u32, capacity: NonZeroUsize) -> Self {
        Self { rate: f64::from(rate), unknown: Buckets::new(capacity), webhooks: Buckets::new(capacity) }
    }

    /// Takes a token for a call from `client` to the Webhook at `webhook_path`; false means 429.
    pub fn allow_webhook(&self, webhook_path: impl Into<String>, client: IpAddr, now: Instant) -> bool {
        self.rate <= 0.0 || self.webhooks.take((webhook_path.into(), client), self.rate, now)
    }

    /// Takes a token for a call from `client` to a path that is no Webhook's; false means 429.
    pub fn allow_unknown(&self, client: IpAddr, now: Instant) -> bool {
        self.rate <= 0.0 || self.unknown.take(client, self.rate, now)
    }
}

/// One set of buckets, least recently used forgotten first.
struct Buckets<K: Hash + Eq>(Mutex<LruCache<K, Bucket>>);

impl<K: Hash + Eq> Buckets<K> {
    fn new(capacity: NonZeroUsize) -> Self {
        Self(Mutex::new(LruCache::new(capacity)))
    }

    fn take(&self, key: K, rate: f64, now: Instant) -> bool {
        let mut buckets = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buckets.get_or_insert_mut(key, || Bucket::full(rate, now)).take(rate, now)
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(rate: f64, now: Instant) -> Self {
        Self { tokens: rate * 2.0, updated: now }
    }

    /// Refills for the time since the last call (up to the burst), then takes one token if there is one.
    fn take(&mut self, rate: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate * 2.0);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HOOK_A: &str = "/api/stacks/webhooks/aaaaaaaa-0000-4000-8000-000000000000";
    const HOOK_B: &str = "/api/stacks/webhooks/bbbbbbbb-0000-4000-8000-000000000000";

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn a_client_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let limiter = RateLimiter::new(5);
        let (a, b) = (ip("127.0.0.1"), ip("127.0.0.2"));
        let start = Instant::now();
        let allowed = (0..20).filter(|_| limiter.allow_webhook(HOOK_A, a, start)).count();
        assert_eq!(allowed, 10, "burst of twice the rate");
        assert!(limiter.allow_webhook(HOOK_A, b, start), "another client has its own bucket");
        assert!(!limiter.allow_webhook(HOOK_A, a, start + Duration::from_millis(100)), "half a token is not enough");
        assert!(limiter.allow_webhook(HOOK_A, a, start + Duration::from_millis(200)), "one token after 1/rate seconds");
        let allowed = (0..20).filter(|_| limiter.allow_unknown(a, start)).count();
        assert_eq!(allowed, 10, "unknown paths: the same rate and burst");
    }

    #[test]
    fn zero_disables_every_budget() {
        let limiter = RateLimiter::new(0);
        let start = Instant::now();
        assert!((0..1000).all(|_| limiter.allow_unknown(ip("127.0.0.1"), start)));
        assert!((0..1000).all(|_| limiter.allow_webhook(HOOK_A, ip("127.0.0.1"), start)));
    }

    #[test]
    fn a_flood_of_unknown_paths_does_not_spend_a_known_webhooks_budget() {
        let limiter = RateLimiter::new(5);
        let client = ip("10.0.0.7");
        let start = Instant::now();
        let refused = (0..1000).filter(|_| !limiter.allow_unknown(client, start)).count();
        assert_eq!(refused, 990, "the flood is limited");
        let allowed = (0..20).filter(|_| limiter.allow_webhook(HOOK_A, client, start)).count();
        assert_eq!(allowed, 10, "the same client's calls to a Webhook keep their whole burst");
    }

    #[test]
    fn each_webhook_and_client_has_its_own_budget() {
        let limiter = RateLimiter::new(1);
        let (attacker, provider) = (ip("203.0.113.9"), ip("192.0.2.1"));
        let start = Instant::now();
        assert_eq!((0..100).filter(|_| limiter.allow_webhook(HOOK_A, attacker, start)).count(), 2);
        assert!(limiter.allow_webhook(HOOK_A, provider, start), "the provider's deliveries to the flooded Webhook");
        assert!(limiter.allow_webhook(HOOK_B, attacker, start), "the flooding client's calls to another Webhook");
        assert!(!limiter.allow_webhook(HOOK_A, attacker, start), "the flooder stays limited");
    }

    #[test]
    fn a_full_set_forgets_the_least_recently_used_client() {
        let limiter = RateLimiter::with_capacity(1, NonZeroUsize::new(2).expect("not zero"));
        let (a, b, c) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        let start = Instant::now();
        for client in [a, b] {
            while limiter.allow_unknown(client, start) {}
        }
        assert!(!limiter.allow_unknown(a, start), "a is used again: the most recent");
        assert!(limiter.allow_unknown(c, start), "a third client: b, the least recent, is forgotten");
        assert!(!limiter.allow_unknown(a, start), "a is remembered, still empty");
        assert!(limiter.allow_unknown(b, start), "b starts again with a full bucket");
    }
}
