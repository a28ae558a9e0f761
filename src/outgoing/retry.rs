//! When to try a delivery again: exponential backoff with jitter, `410 Gone` stops at once,
//! `Retry-After` is honoured on 429 and 503. Pure: the jitter and the clock come in as arguments.

use std::time::Duration;

/// The retry policy of one hook, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

/// What one attempt's outcome leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Delivered.
    Done,
    /// Try again after this long.
    RetryAfter(Duration),
    /// Stop: the reason is shown in status.
    GiveUp(String),
}

/// How an attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered with this status (and maybe `Retry-After`).
    Status { code: u16, retry_after: Option<Duration> },
    /// No answer: connection refused, timeout, reset. Worth retrying.
    Transport,
    /// Cannot succeed by retrying (refused by the SSRF guard, a template or secret error).
    Permanent,
}

/// The wait before attempt `attempt + 1`, after `attempt` attempts (1-based): `initial * 2^(attempt-1)`,
/// at most `max`, then scaled into `[d/2, d)` by `jitter` in `[0, 1)` ("equal jitter"), so retries
/// of many deliveries spread out yet never come sooner than half the nominal backoff.
pub fn backoff(policy: &Backoff, attempt: u32, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    let nominal = policy.initial.saturating_mul(1u32 << exponent.min(31)).min(policy.max);
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
    let half = nominal / 2;
    half + half.mul_f64(jitter)
}

/// Decides what follows attempt number `attempt` (1-based) that ended as `outcome`.
pub fn decide(policy: &Backoff, attempt: u32, outcome: Attempt, jitter: f64) -> Decision {
    let retryable = match outcome {
        Attempt::Status { code, .. } if (200..300).contains(&code) => return Decision::Done,
        Attempt::Status { code: 410, .. } => return Decision::GiveUp("410 Gone: the receiver asked to stop".into()),
        Attempt::Status { code, .. } => code == 408 || code == 429 || code >= 500,
        Attempt::Transport => true,
        Attempt::Permanent => false,
    };
    if !retryable {
        let why = match outcome {
            Attempt::Status { code, .. } => format!("HTTP {code} is not retried"),
            _ => "not retried".into(),
        };
        return Decision::GiveUp(why);
    }
    if attempt >= policy.max_attempts {
        return Decision::GiveUp(format!("gave up after {attempt} attempts"));
    }
    let wait = match outcome {
        Attempt::Status { code: 429 | 503, retry_after: Some(after) } => after.min(policy.max),
        _ => backoff(policy, attempt, jitter),
    };
    Decision::RetryAfter(wait)
}

/// Parses `Retry-After`: delay seconds or an HTTP date (RFC 9110), relative to `now`.
/// A date in the past means "now"; anything unparseable is ignored.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(86_400)));
    }
    let date = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let seconds = now.duration_until(date).as_secs_f64();
    Some(Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff { max_attempts: 5, initial: Duration::from_secs(2), max: Duration::from_secs(10) };

    fn status(code: u16) -> Attempt {
        Attempt::Status { code, retry_after: None }
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_within_half() {
        assert_eq!(backoff(&POLICY, 1, 0.0), Duration::from_secs(1));
        assert!(backoff(&POLICY, 1, 0.999_999) < Duration::from_secs(2));
        assert_eq!(backoff(&POLICY, 2, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(&POLICY, 3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(&POLICY, 4, 0.0), Duration::from_secs(5), "capped at max");
        assert_eq!(backoff(&POLICY, 400, 0.5), Duration::from_millis(7500), "no overflow");
        assert_eq!(backoff(&POLICY, 1, f64::NAN), Duration::from_secs(1));
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(&POLICY, 1, status(200), 0.0), Decision::Done);
        assert_eq!(decide(&POLICY, 1, status(204), 0.0), Decision::Done);
        assert_eq!(decide(&POLICY, 1, status(500), 0.0), Decision::RetryAfter(Duration::from_secs(1)));
        assert_eq!(decide(&POLICY, 2, Attempt::Transport, 0.0), Decision::RetryAfter(Duration::from_secs(2)));
        assert_eq!(decide(&POLICY, 1, status(408), 0.0), Decision::RetryAfter(Duration::from_secs(1)));
        assert!(matches!(decide(&POLICY, 1, status(410), 0.0), Decision::GiveUp(m) if m.contains("410")));
        assert!(matches!(decide(&POLICY, 1, status(404), 0.0), Decision::GiveUp(m) if m.contains("404")));
        assert!(matches!(decide(&POLICY, 1, Attempt::Permanent, 0.0), Decision::GiveUp(_)));
        assert!(matches!(decide(&POLICY, 5, status(500), 0.0), Decision::GiveUp(m) if m.contains("5 attempts")));
        let limited = Attempt::Status { code: 429, retry_after: Some(Duration::from_secs(7)) };
        assert_eq!(decide(&POLICY, 1, limited, 0.0), Decision::RetryAfter(Duration::from_secs(7)));
        let unavailable = Attempt::Status { code: 503, retry_after: Some(Duration::from_secs(60)) };
        assert_eq!(decide(&POLICY, 1, unavailable, 0.0), Decision::RetryAfter(Duration::from_secs(10)), "capped");
        let ignored = Attempt::Status { code: 500, retry_after: Some(Duration::from_secs(9)) };
        assert_eq!(decide(&POLICY, 1, ignored, 0.0), Decision::RetryAfter(Duration::from_secs(1)), "only 429/503");
    }

    #[test]
    fn retry_after_forms() {
        let now = jiff::Timestamp::from_second(1_445_412_480).expect("time"); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("99999999999", now), Some(Duration::from_secs(86_400)));
    }
}
