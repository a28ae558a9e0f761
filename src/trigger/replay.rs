//! Refuses Standard Webhooks deliveries whose `webhook-id` was already accepted.
//!
//! The signed timestamp is only trusted for five minutes, so remembering ids for ten covers
//! every replay that could still pass [`super::signature::verify`], with room for clock skew.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// How long an id is remembered by [`ReplayGuard::default`].
pub const DEFAULT_WINDOW: SignedDuration = SignedDuration::from_mins(10);

/// How many ids [`ReplayGuard::default`] keeps at most (about 10 MB at worst).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The id was seen within the window: the delivery is a replay (answer 401, or 200 for a
/// sender's honest retry of an accepted delivery, as the caller prefers).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("webhook-id {id:?} was already delivered")]
pub struct Replayed {
    pub id: String,
}

/// A bounded, time-windowed set of seen ids, safe to share between request handlers.
///
/// Ids are kept in arrival order; expiry and the capacity bound both drop from the oldest
/// end, so every operation is amortised O(1). Callers that serve several Webhook objects
/// should prefix ids with the object's namespace/name so senders cannot collide.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    window: SignedDuration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ids: HashSet<String>,
    order: VecDeque<(Timestamp, String)>,
    /// Latest time seen; arrivals are stamped no earlier, so `order` stays sorted even if
    /// the clock steps back.
    latest: Option<Timestamp>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_WINDOW)
    }
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` ids (at least one) for `window`.
    pub fn new(capacity: usize, window: SignedDuration) -> Self {
        Self { capacity: capacity.max(1), window, state: Mutex::new(State::default()) }
    }

    /// Remembers `id`, or refuses it if it was remembered within the window.
    ///
    /// When full, the oldest id is forgotten: under a flood, old ids may be replayable
    /// again, which is the price of bounded memory; their timestamps are usually stale by
    /// then and fail verification anyway.
    pub fn check_and_remember(&self, id: &str, now: Timestamp) -> Result<(), Replayed> {
        // A handler that panicked mid-update leaves a consistent set (each step is atomic
        // with respect to the invariant), so a poisoned lock is safe to reuse.
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = state.latest.map_or(now, |latest| latest.max(now));
        state.latest = Some(now);
        let cutoff = now.checked_sub(self.window).unwrap_or(Timestamp::MIN);
        while let Some((seen, _)) = state.order.front() {
            if *seen > cutoff {
                break;
            }
            if let Some((_, expired)) = state.order.pop_front() {
                state.ids.remove(&expired);
            }
        }
        if state.ids.contains(id) {
            return Err(Replayed { id: id.to_owned() });
        }
        while state.order.len() >= self.capacity {
            match state.order.pop_front() {
                Some((_, evicted)) => state.ids.remove(&evicted),
                None => break,
            };
        }
        state.ids.insert(id.to_owned());
        state.order.push_back((now, id.to_owned()));
        Ok(())
    }

    /// How many ids are remembered now (expired ones linger until the next check).
    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn refuses_a_repeat_within_the_window_and_forgets_after_it() {
        let guard = ReplayGuard::default();
        assert_eq!(guard.check_and_remember("msg_1", at(1_000)), Ok(()));
        assert_eq!(guard.check_and_remember("msg_1", at(1_599)), Err(Replayed { id: "msg_1".into() }));
        assert_eq!(guard.check_and_remember("msg_2", at(1_599)), Ok(()));
        assert_eq!(guard.check_and_remember("msg_1", at(1_600)), Ok(()), "expired after 10 minutes");
    }

    #[test]
    fn evicts_the_oldest_when_full() {
        let guard = ReplayGuard::new(2, DEFAULT_WINDOW);
        for id in ["a", "b", "c"] {
            assert_eq!(guard.check_and_remember(id, at(10)), Ok(()));
        }
        assert_eq!(guard.len(), 2);
        assert_eq!(guard.check_and_remember("a", at(10)), Ok(()), "a was evicted");
        assert!(guard.check_and_remember("c", at(10)).is_err());
    }

    #[test]
    fn a_clock_stepping_back_does_not_resurrect_ids() {
        let guard = ReplayGuard::default();
        assert_eq!(guard.check_and_remember("x", at(5_000)), Ok(()));
        assert!(guard.check_and_remember("x", at(100)).is_err());
    }

    #[test]
    fn is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ReplayGuard>();
        let guard = std::sync::Arc::new(ReplayGuard::default());
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let guard = guard.clone();
                std::thread::spawn(move || guard.check_and_remember("same", at(n)).is_ok())
            })
            .collect();
        let accepted = handles.into_iter().filter_map(|h| h.join().ok()).filter(|ok| *ok).count();
        assert_eq!(accepted, 1);
    }
}
