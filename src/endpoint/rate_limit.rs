//! Per-source rate limiting of the trigger endpoint: a token bucket per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most sources remembered; the oldest buckets are dropped beyond this, bounding memory.
const MAX_SOURCES: usize = 10_000;

/// Token buckets keyed by client IP: `rate` calls per second, bursts of `2 × rate`.
pub struct RateLimiter {
    rate: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `rate` calls per second per source; 0 disables the limit.
    pub fn new(rate: u32) -> Self {
        Self { rate: f64::from(rate), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `source` at `now`; false means answer 429.
    pub fn allow(&self, source: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let burst = self.rate * 2.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_SOURCES && !buckets.contains_key(&source) {
            if let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.updated).map(|(ip, _)| *ip) {
                buckets.remove(&oldest);
            }
        }
        let bucket = buckets.entry(source).or_insert(Bucket { tokens: burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
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

    #[test]
    fn a_source_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let limiter = RateLimiter::new(5);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().expect("ip"), "127.0.0.2".parse().expect("ip"));
        let start = Instant::now();
        let allowed = (0..20).filter(|_| limiter.allow(a, start)).count();
        assert_eq!(allowed, 10, "burst of twice the rate");
        assert!(limiter.allow(b, start), "another source has its own bucket");
        assert!(!limiter.allow(a, start + Duration::from_millis(100)), "half a token is not enough");
        assert!(limiter.allow(a, start + Duration::from_millis(200)), "one token after 1/rate seconds");
        assert!(RateLimiter::new(0).allow(a, start), "0 disables");
    }
}
