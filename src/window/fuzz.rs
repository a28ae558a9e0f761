//! Fuzz target entry point: arbitrary bytes → window specs → compile → evaluate → invariants.

use std::time::Duration;

use jiff::Timestamp;

use super::{Decision, Gate, WindowKind, WindowSpec, Windows};

/// Most windows a fuzz input may describe; the CRD allows 32, fewer keeps each run fast.
const MAX_WINDOWS: usize = 8;

/// Entry point for a fuzz target, e.g. with cargo-fuzz:
/// `fuzz_target!(|data: &[u8]| tugboat::window::fuzz_compile_and_evaluate(data));`
///
/// A plain function (no fuzzing dependency) so the crate builds on stable and the same entry is
/// exercised by ordinary tests. Input layout, chosen so a fuzzer reaches interesting states:
/// - byte 0: bit 0 picks the gate (Restart/Apply), bit 1 draws `now` from jiff's whole range
///   instead of 2000–2200;
/// - bytes 1..9: `now` as little-endian seconds (folded into that range);
/// - the rest, as lossy UTF-8: up to `MAX_WINDOWS` (8) lines `kind;schedule;seconds;zone;gates`
///   where kind `d` is deny (anything else allow) and gates holds `r`/`a`.
///
/// Compile errors are fine (bad input is expected). Panics mean a bug: evaluation panicked, or a
/// reported `next_open` was not after `now` or was not actually open.
pub fn fuzz_compile_and_evaluate(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Some((secs, text)) = rest.split_first_chunk::<8>() else { return };
    let now = fold_timestamp(i64::from_le_bytes(*secs), flags & 2 != 0);
    let gate = if flags & 1 == 0 { Gate::Restart } else { Gate::Apply };
    let text = String::from_utf8_lossy(text);
    let specs: Vec<WindowSpec> = text.lines().take(MAX_WINDOWS).map(parse_line).collect();
    let Ok(windows) = Windows::compile(&specs) else { return };
    if let Decision::Closed { next_open: Some(next) } = windows.evaluate(now, gate) {
        assert!(next > now, "next_open {next} is not after now {now}");
        assert_eq!(windows.evaluate(next, gate), Decision::Open, "closed at reported next_open {next}");
    }
}

/// Maps arbitrary seconds onto a valid timestamp, mostly near the present.
fn fold_timestamp(secs: i64, full_range: bool) -> Timestamp {
    let (min, max) = if full_range {
        (Timestamp::MIN.as_second(), Timestamp::MAX.as_second())
    } else {
        (946_684_800, 7_258_118_400) // 2000-01-01 .. 2200-01-01
    };
    let folded = min + secs.rem_euclid(max - min);
    Timestamp::from_second(folded).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// One `kind;schedule;seconds;zone;gates` line; missing parts become empty values.
fn parse_line(line: &str) -> WindowSpec {
    let mut parts = line.split(';');
    let mut next = || parts.next().unwrap_or_default();
    let kind = if next() == "d" { WindowKind::Deny } else { WindowKind::Allow };
    let schedule = next().to_owned();
    let duration = Duration::from_secs(next().trim().parse().unwrap_or(0));
    let time_zone = next().to_owned();
    let gates = next()
        .chars()
        .filter_map(|c| match c {
            'r' => Some(Gate::Restart),
            'a' => Some(Gate::Apply),
            _ => None,
        })
        .collect();
    WindowSpec { kind, schedule, duration, time_zone, gates }
}
