//! Change windows: a pure evaluator deciding whether a gate (Restart, Apply) is open at an instant.
//!
//! Semantics (DESIGN §5): a window is *active* at `t` when some cron start `s`, read in the
//! window's IANA time zone, has `s <= t < s + duration`. For each gate only the windows listing
//! that gate count. Deny beats allow: the gate is open at `t` when no deny window is active and,
//! if any allow window counts, at least one allow window is active. No windows (for that gate)
//! means always open. When closed, [`Decision::Closed`] says when the gate next opens, so the
//! operator can record `nextWindowStart` and requeue instead of polling.
//!
//! Nothing here reads the clock or the environment: `now` is a parameter, which is what makes
//! DST edge cases testable. Why croner, and its DST rules, are documented in the private
//! `compiled` module; the bounded next-open search in `evaluate`.

mod compiled;
mod error;
mod evaluate;
mod from_api;
mod fuzz;
mod gating;

use std::time::Duration;

use jiff::Timestamp;

use compiled::CompiledWindow;
pub use error::WindowError;
pub use evaluate::{HORIZON, MAX_STEPS};
pub use from_api::{CliWindow, for_application};
pub use fuzz::fuzz_compile_and_evaluate;
pub use gating::{Opening, held_until};

/// Whether a window opens or closes its gates while active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// Gates are open only while some allow window is active (if any allow window exists).
    Allow,
    /// Gates are closed while the window is active, whatever the allow windows say.
    Deny,
}

/// What a window holds back; evaluated separately so a restart freeze need not block applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gate {
    /// Rolling restarts asked for by `rollout-restart`.
    Restart,
    /// Applying manifests (new revisions, new variables, drift correction).
    Apply,
}

/// One change window as written by the user, before validation.
///
/// Mirrors the CRD's `ChangeWindow` but with the duration already parsed, so this module does
/// not depend on the API types and can be tested and fuzzed on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// Allow or deny.
    pub kind: WindowKind,
    /// Five-field cron (minute hour day-of-month month day-of-week) giving the start times.
    pub schedule: String,
    /// How long each range lasts after its start (elapsed time); may exceed the cron period.
    pub duration: Duration,
    /// IANA zone the schedule is read in, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// Gates this window has a say for; must not be empty.
    pub gates: Vec<Gate>,
}

/// The outcome of [`Windows::evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The gate may proceed now.
    Open,
    /// The gate is held back.
    Closed {
        /// The first instant after `now` at which the gate is open, or `None` if there is none
        /// within [`HORIZON`] (or the search needed more than [`MAX_STEPS`] steps). The
        /// operator should still re-evaluate later rather than treat `None` as "forever".
        next_open: Option<Timestamp>,
    },
}

/// A validated, compiled list of change windows.
///
/// Compiling once per spec change keeps cron parsing and zone lookup out of every reconcile.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    windows: Vec<CompiledWindow>,
}

impl Windows {
    /// Validates and compiles `specs`, reporting the first bad window by index and field.
    pub fn compile(specs: &[WindowSpec]) -> Result<Windows, WindowError> {
        let windows =
            specs.iter().enumerate().map(|(i, spec)| CompiledWindow::compile(i, spec)).collect::<Result<_, _>>()?;
        Ok(Windows { windows })
    }

    /// True when there are no windows at all, i.e. every gate is always open.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Open at `now` for `gate`? If closed, when does it next open (None if never within
    /// [`HORIZON`])? Never panics, for any `now` jiff can represent.
    pub fn evaluate(&self, now: Timestamp, gate: Gate) -> Decision {
        evaluate::evaluate(&self.windows, now, gate)
    }
}
