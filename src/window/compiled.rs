//! One window compiled: parsed cron, resolved time zone, and the two searches evaluation needs.
//!
//! # Why `croner`
//!
//! Both candidates were evaluated. `cron` (0.17) is chrono-only and expects Quartz-style
//! patterns with a seconds field, so five-field schedules would need rewriting, and it does not
//! document what happens in a DST gap or overlap. `croner` (4.x) is actively maintained, parses
//! standard five-field (Vixie/OCPS) patterns, has a native `jiff` backend (`jiff::Zoned`
//! implements its `CronDateTime`), and documents its DST rules. That keeps tugboat on a single
//! time library (`jiff`, with its bundled tz database) instead of converting through chrono.
//!
//! # DST behaviour (croner's documented rules, relied on by the tests)
//!
//! Starts are computed on the wall clock of the window's zone, so `0 22 * * *` starts at 22:00
//! local on both sides of a change. For a start that is a fixed time (single minute and hour):
//! - in a skipped hour (spring forward) it moves to the first valid instant after the gap on the
//!   same day, e.g. `30 2 * * *` in Europe/Berlin starts at 03:00 CEST on 2026-03-29;
//! - in a repeated hour (fall back) it starts once, on the first pass (the earlier offset).
//!
//! Wildcard/step starts skip times inside a gap and fire on both passes of a repeated hour.
//! The duration is elapsed (absolute) time, like the `4h` Go-style duration it comes from: a
//! 22:00 + 4h window ends at 03:00 local (not 02:00) on a spring-forward night, and in New
//! York's fall-back night it ends at the second 01:00 (06:00 UTC).

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::{Gate, WindowError, WindowKind, WindowSpec};

/// Schedules whose [`ever_matches`] answer is remembered.
const REMEMBERED_SCHEDULES: std::num::NonZeroUsize = std::num::NonZeroUsize::new(1024).expect("non-zero");

static KNOWN_SCHEDULES: std::sync::LazyLock<std::sync::Mutex<lru::LruCache<String, bool>>> =
    std::sync::LazyLock::new(|| std::sync::Mutex::new(lru::LruCache::new(REMEMBERED_SCHEDULES)));

/// Whether `cron` (parsed from `schedule`) fires on any date, remembered per schedule string.
///
/// For a schedule that never fires croner searches to its limit: 5.9 ms against 11 µs for a
/// daily one (docs/benchmarks.md). Windows are compiled on every reconcile and every trigger
/// call, so without the memory an application with 32 such windows would cost about 190 ms
/// of CPU per call to anyone holding its Webhook's URL.
fn ever_matches(schedule: &str, cron: &Cron) -> bool {
    let lock = || KNOWN_SCHEDULES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&known) = lock().get(schedule) {
        return known;
    }
    let probe = DateTime::constant(2000, 1, 1, 0, 0, 0, 0);
    let matches = cron.find_next_occurrence(&probe, true).is_ok();
    lock().put(schedule.to_owned(), matches);
    matches
}

/// A window ready to evaluate; all user input has been checked once, at compile time.
#[derive(Debug, Clone)]
pub(crate) struct CompiledWindow {
    pub(crate) kind: WindowKind,
    gates: u8,
    cron: Cron,
    tz: TimeZone,
    duration: SignedDuration,
}

/// Bit for `gate` in [`CompiledWindow::gates`]; a bitmask makes the per-gate filter free.
pub(crate) const fn gate_bit(gate: Gate) -> u8 {
    match gate {
        Gate::Restart => 1,
        Gate::Apply => 2,
    }
}

impl CompiledWindow {
    /// Checks and compiles `spec`, the `index`-th window, so errors can name its position.
    pub(crate) fn compile(index: usize, spec: &WindowSpec) -> Result<Self, WindowError> {
        let schedule_error = |reason: String| WindowError::Schedule { index, schedule: spec.schedule.clone(), reason };
        // The CRD promises exactly five fields; croner would also take `@daily` or a seconds
        // field, and a schedule must not mean something different here than in the API server.
        let fields = spec.schedule.split_whitespace().count();
        if fields != 5 {
            return Err(schedule_error(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {fields}"
            )));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(&spec.schedule).map_err(|e| schedule_error(e.to_string()))?;
        // `0 0 31 2 *` parses but never fires; catching it here turns a window that silently
        // never opens into an error the user sees. Any real pattern matches within the
        // 400-year Gregorian cycle, well inside croner's search limit.
        if !ever_matches(&spec.schedule, &cron) {
            return Err(schedule_error("never matches any date".to_owned()));
        }
        let tz = jiff::tz::db()
            .get(&spec.time_zone)
            .map_err(|_| WindowError::TimeZone { index, name: spec.time_zone.clone() })?;
        if spec.duration.is_zero() {
            return Err(WindowError::Duration { index });
        }
        // Longer than i64 seconds is "forever"; saturating avoids a second error path.
        let duration = SignedDuration::try_from(spec.duration).unwrap_or(SignedDuration::MAX);
        if spec.gates.is_empty() {
            return Err(WindowError::Gates { index });
        }
        // Repeated gates are harmless (the CRD rejects them anyway), so they are simply merged.
        let gates = spec.gates.iter().fold(0, |bits, gate| bits | gate_bit(*gate));
        Ok(Self { kind: spec.kind, gates, cron, tz, duration })
    }

    /// Whether this window has a say for `gate`.
    pub(crate) fn gates(&self, gate: Gate) -> bool {
        self.gates & gate_bit(gate) != 0
    }

    /// If `t` lies inside this window, the end of the range containing it.
    ///
    /// Only the latest start `s <= t` matters: every earlier start has an earlier end, because the
    /// duration is fixed, so if the latest one does not reach `t` none does. This also makes
    /// windows longer than their period work without special cases.
    pub(crate) fn covering_end(&self, t: Timestamp) -> Option<Timestamp> {
        let start = self.cron.find_previous_occurrence(&t.to_zoned(self.tz.clone()), true).ok()?.timestamp();
        let end = start.checked_add(self.duration).unwrap_or(Timestamp::MAX);
        (start <= t && t < end).then_some(end)
    }

    /// The first start strictly after `t`, if croner can find one (it gives up past year 5000).
    pub(crate) fn next_start_after(&self, t: Timestamp) -> Option<Timestamp> {
        let start = self.cron.find_next_occurrence(&t.to_zoned(self.tz.clone()), false).ok()?.timestamp();
        // croner works in whole seconds; the guard keeps the caller's loop strictly increasing
        // even if a sub-second `t` ever resolved to its own second.
        (start > t).then_some(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whether_a_schedule_ever_fires_is_searched_once() {
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        for (schedule, fires) in [("0 0 30 2 *", false), ("7 7 29 2 *", true)] {
            let cron = parser.parse(schedule).expect("parses");
            assert_eq!(ever_matches(schedule, &cron), fires, "{schedule}");
            let known = KNOWN_SCHEDULES.lock().unwrap_or_else(|p| p.into_inner()).peek(schedule).copied();
            assert_eq!(known, Some(fires), "{schedule} is remembered");
            assert_eq!(ever_matches(schedule, &cron), fires, "{schedule} again");
        }
    }
}
