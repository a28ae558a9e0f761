//! Shared builders for the window tests: compact specs, instants with explicit offsets, and a
//! table runner that reports every failing row instead of stopping at the first.
#![allow(dead_code, unused_imports)]

use jiff::{SignedDuration, Timestamp};
use tugboat::window::{Decision, Gate, WindowKind, WindowSpec, Windows};

pub const BOTH: &[Gate] = &[Gate::Restart, Gate::Apply];

/// A window from a friendly duration such as `4h` or `90m`.
pub fn spec(kind: WindowKind, schedule: &str, duration: &str, tz: &str, gates: &[Gate]) -> WindowSpec {
    let duration: SignedDuration = duration.parse().expect("test duration");
    WindowSpec {
        kind,
        schedule: schedule.to_owned(),
        duration: duration.try_into().expect("positive test duration"),
        time_zone: tz.to_owned(),
        gates: gates.to_vec(),
    }
}

pub fn allow(schedule: &str, duration: &str, tz: &str) -> WindowSpec {
    spec(WindowKind::Allow, schedule, duration, tz, BOTH)
}

pub fn deny(schedule: &str, duration: &str, tz: &str) -> WindowSpec {
    spec(WindowKind::Deny, schedule, duration, tz, BOTH)
}

pub fn compile(specs: &[WindowSpec]) -> Windows {
    Windows::compile(specs).expect("test windows compile")
}

/// An instant written with its UTC offset, e.g. `2026-10-25T02:30+01:00`, so rows inside a
/// repeated hour are unambiguous.
pub fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
}

/// Expected outcome of a row: `OPEN`, `closed(next)` or `NEVER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Open,
    ClosedUntil(&'static str),
    Never,
}
pub use Want::{Never as NEVER, Open as OPEN};

pub fn closed(next: &'static str) -> Want {
    Want::ClosedUntil(next)
}

fn want_decision(want: Want) -> Decision {
    match want {
        Want::Open => Decision::Open,
        Want::ClosedUntil(next) => Decision::Closed { next_open: Some(at(next)) },
        Want::Never => Decision::Closed { next_open: None },
    }
}

/// Evaluates every `(now, gate, want)` row and fails listing all mismatches.
pub fn check(name: &str, windows: &Windows, rows: &[(&str, Gate, Want)]) {
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|&(now, gate, want)| {
            let got = windows.evaluate(at(now), gate);
            (got != want_decision(want)).then(|| format!("  {now} {gate:?}: want {want:?}, got {got:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{name}: {} of {} rows failed\n{}", failures.len(), rows.len(), failures.join("\n"));
}
