//! Which gates a deployment needs, and until when closed windows hold it back.

use jiff::Timestamp;

use super::{Decision, Gate, Windows};

/// When a held deployment may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The first instant every gate it needs is open.
    At(Timestamp),
    /// No such instant within the search horizon.
    NotWithinHorizon,
}

impl Opening {
    /// The instant, if there is one within the horizon.
    pub fn at(self) -> Option<Timestamp> {
        match self {
            Opening::At(at) => Some(at),
            Opening::NotWithinHorizon => None,
        }
    }
}

/// Whether a deployment must wait: `None` when it may run at `now`; otherwise when it may.
/// Every deployment needs `Apply`; one with restarts also needs `Restart`. `forced` (a Webhook
/// that allows it and a call that asks) runs anyway.
pub fn held_until(windows: &Windows, now: Timestamp, restarts: bool, forced: bool) -> Option<Opening> {
    if forced || windows.is_empty() {
        return None;
    }
    let gates: &[Gate] = if restarts { &[Gate::Apply, Gate::Restart] } else { &[Gate::Apply] };
    let mut at = now;
    // Each round moves `at` strictly forward to the latest next opening among closed gates.
    for _ in 0..MAX_ROUNDS {
        let mut next: Option<Timestamp> = None;
        for gate in gates {
            if let Decision::Closed { next_open } = windows.evaluate(at, *gate) {
                let Some(open) = next_open else { return Some(Opening::NotWithinHorizon) };
                next = Some(next.map_or(open, |n| n.max(open)));
            }
        }
        match next {
            None if at == now => return None,
            None => return Some(Opening::At(at)),
            Some(later) => at = later,
        }
    }
    Some(Opening::NotWithinHorizon)
}

/// Rounds of the joint search; gates alternating more often than this are treated as never open.
const MAX_ROUNDS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{WindowKind, WindowSpec};
    use std::time::Duration;

    fn windows(specs: &[(WindowKind, &str, u64, &[Gate])]) -> Windows {
        let specs: Vec<_> = specs
            .iter()
            .map(|(kind, schedule, minutes, gates)| WindowSpec {
                kind: *kind,
                schedule: (*schedule).into(),
                duration: Duration::from_secs(minutes * 60),
                time_zone: "UTC".into(),
                gates: gates.to_vec(),
            })
            .collect();
        Windows::compile(&specs).expect("compiles")
    }

    #[test]
    fn restarts_also_need_the_restart_gate_and_the_latest_opening_wins() {
        // Apply allowed 10:00-12:00; restarts denied 10:00-11:00.
        let w = windows(&[
            (WindowKind::Allow, "0 10 * * *", 120, &[Gate::Apply]),
            (WindowKind::Deny, "0 10 * * *", 60, &[Gate::Restart]),
        ]);
        let at = |s: &str| s.parse::<Timestamp>().expect("timestamp");
        assert_eq!(held_until(&w, at("2026-06-01T10:30:00Z"), false, false), None, "apply alone may run");
        assert_eq!(
            held_until(&w, at("2026-06-01T10:30:00Z"), true, false),
            Some(Opening::At(at("2026-06-01T11:00:00Z")))
        );
        assert_eq!(
            held_until(&w, at("2026-06-01T09:00:00Z"), true, false),
            Some(Opening::At(at("2026-06-01T11:00:00Z")))
        );
        assert_eq!(held_until(&w, at("2026-06-01T09:00:00Z"), true, true), None, "forced");
        assert_eq!(held_until(&Windows::default(), at("2026-06-01T09:00:00Z"), true, false), None, "no windows");
    }
}
