//! Open/closed decision for one gate, and the bounded search for the next instant it opens.

use jiff::{SignedDuration, Timestamp};

use super::compiled::CompiledWindow;
use super::{Decision, Gate, WindowKind};

/// How far ahead [`Decision::Closed::next_open`] is searched: a little over a year, so yearly
/// schedules (e.g. a year-end freeze) still yield a concrete next opening.
pub const HORIZON: SignedDuration = SignedDuration::from_hours(400 * 24);

/// Upper bound on search steps. Each step jumps to a deny end or an allow start, so realistic
/// schedules need a handful; the bound only stops adversarial ones (e.g. one-second windows
/// every minute, which never overlap) from costing seconds of CPU in a reconcile.
pub const MAX_STEPS: usize = 10_000;

/// Windows that count for one gate, split by kind.
struct Relevant<'a> {
    allows: Vec<&'a CompiledWindow>,
    denies: Vec<&'a CompiledWindow>,
}

impl Relevant<'_> {
    /// The latest end among deny windows active at `t`; jumping there skips overlapping denies.
    fn deny_end(&self, t: Timestamp) -> Option<Timestamp> {
        self.denies.iter().filter_map(|w| w.covering_end(t)).max()
    }

    /// Allowed by the allow windows alone (vacuously true when there are none).
    fn allowed(&self, t: Timestamp) -> bool {
        self.allows.is_empty() || self.allows.iter().any(|w| w.covering_end(t).is_some())
    }

    /// The gate is open at `t`: no deny active and, if allows exist, one of them active.
    fn open(&self, t: Timestamp) -> bool {
        self.deny_end(t).is_none() && self.allowed(t)
    }
}

/// See [`super::Windows::evaluate`].
pub(crate) fn evaluate(windows: &[CompiledWindow], now: Timestamp, gate: Gate) -> Decision {
    let (allows, denies) =
        windows.iter().filter(|w| w.gates(gate)).partition::<Vec<_>, _>(|w| w.kind == WindowKind::Allow);
    let relevant = Relevant { allows, denies };
    if relevant.open(now) {
        return Decision::Open;
    }
    Decision::Closed { next_open: next_open(&relevant, now) }
}

/// The first instant after `now` (which is closed) at which the gate is open.
///
/// Walks forward: while a deny is active, jump to its end; then, if no allow is active, jump to
/// the next allow start; repeat until both hold. Every jump strictly increases `t`, and the walk
/// stops at [`HORIZON`] or after [`MAX_STEPS`] jumps, so it always terminates. The value it
/// returns passed the same `open` test `evaluate` uses, so evaluating there yields `Open`.
fn next_open(relevant: &Relevant<'_>, now: Timestamp) -> Option<Timestamp> {
    let limit = now.checked_add(HORIZON).unwrap_or(Timestamp::MAX);
    let mut t = now;
    for _ in 0..MAX_STEPS {
        if let Some(end) = relevant.deny_end(t) {
            t = end;
        } else if relevant.allowed(t) {
            return Some(t);
        } else {
            t = relevant.allows.iter().filter_map(|w| w.next_start_after(t)).min()?;
        }
        // A deny that saturated at Timestamp::MAX, or a start past the horizon, ends the search.
        if t > limit || t == Timestamp::MAX {
            return None;
        }
    }
    None
}
