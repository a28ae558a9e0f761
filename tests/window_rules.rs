//! Combination rules (deny beats allow, only-deny, gates), next-open search and compile errors.
//! 2026-01-05 is a Monday; all rows are UTC unless the offset says otherwise.

mod common;

use std::time::Duration;

use common::*;
use tugboat::window::Gate::{Apply, Restart};
use tugboat::window::{Decision, Gate, WindowError, WindowKind, Windows};

#[test]
fn no_windows_is_always_open() {
    let w = compile(&[]);
    assert!(w.is_empty());
    check("empty", &w, &[("2026-01-05T12:00Z", Apply, OPEN), ("2026-01-05T12:00Z", Restart, OPEN)]);
    assert!(!compile(&[deny("0 12 * * *", "1h", "UTC")]).is_empty());
}

#[test]
fn window_crossing_midnight() {
    let w = compile(&[allow("0 22 * * 5", "4h", "UTC")]);
    check(
        "Fri 22:00+4h",
        &w,
        &[
            ("2026-01-09T21:59:59Z", Apply, closed("2026-01-09T22:00Z")),
            ("2026-01-09T22:00Z", Apply, OPEN),
            ("2026-01-10T01:59Z", Apply, OPEN),
            ("2026-01-10T01:59:59.999Z", Apply, OPEN),
            ("2026-01-10T02:00Z", Apply, closed("2026-01-16T22:00Z")),
        ],
    );
}

#[test]
fn deny_inside_allow() {
    let w = compile(&[allow("0 8 * * 1-5", "10h", "UTC"), deny("0 12 * * *", "1h", "UTC")]);
    check(
        "weekday 08-18 minus 12-13",
        &w,
        &[
            ("2026-01-05T07:59:59Z", Apply, closed("2026-01-05T08:00Z")),
            ("2026-01-05T08:00Z", Apply, OPEN),
            ("2026-01-05T11:59:59Z", Apply, OPEN),
            ("2026-01-05T12:00Z", Apply, closed("2026-01-05T13:00Z")),
            ("2026-01-05T12:30Z", Apply, closed("2026-01-05T13:00Z")),
            ("2026-01-05T13:00Z", Restart, OPEN),
            ("2026-01-05T17:59:59Z", Apply, OPEN),
            ("2026-01-05T18:00Z", Apply, closed("2026-01-06T08:00Z")),
            // Across the weekend: Friday evening and Saturday lunchtime both wait for Monday.
            ("2026-01-09T18:00Z", Apply, closed("2026-01-12T08:00Z")),
            ("2026-01-10T12:30Z", Apply, closed("2026-01-12T08:00Z")),
            ("2026-01-11T23:59:59Z", Restart, closed("2026-01-12T08:00Z")),
        ],
    );
}

#[test]
fn deny_ending_outside_allow_waits_for_next_allow_start() {
    // Allow 08-12 on weekdays, deny 11-13 daily: inside the deny at 11:30 the deny ends at 13:00,
    // when no allow is active, so the next opening is the next allow start.
    let w = compile(&[allow("0 8 * * 1-5", "4h", "UTC"), deny("0 11 * * *", "2h", "UTC")]);
    check(
        "deny outlasting allow",
        &w,
        &[
            ("2026-01-05T11:30Z", Apply, closed("2026-01-06T08:00Z")),
            ("2026-01-09T11:30Z", Apply, closed("2026-01-12T08:00Z")),
        ],
    );
    // A deny covering the next allow start pushes past it to the deny's end.
    let w = compile(&[allow("0 8 * * *", "4h", "UTC"), deny("0 7 * * *", "2h", "UTC")]);
    check("deny over allow start", &w, &[("2026-01-05T06:00Z", Apply, closed("2026-01-05T09:00Z"))]);
}

#[test]
fn only_deny_windows() {
    let w =
        compile(&[deny("0 0 * * 6", "48h", "UTC"), deny("0 12 * * *", "1h", "UTC"), deny("0 13 * * *", "1h", "UTC")]);
    check(
        "weekend + back-to-back lunch denies",
        &w,
        &[
            ("2026-01-07T10:00Z", Apply, OPEN),
            ("2026-01-07T12:30Z", Apply, closed("2026-01-07T14:00Z")), // two adjacent denies chain
            ("2026-01-07T14:00Z", Apply, OPEN),
            ("2026-01-10T00:00Z", Apply, closed("2026-01-12T00:00Z")),
            ("2026-01-11T12:30Z", Restart, closed("2026-01-12T00:00Z")),
            ("2026-01-12T00:00Z", Restart, OPEN),
        ],
    );
}

#[test]
fn gates_are_evaluated_separately() {
    let w = compile(&[
        spec(WindowKind::Deny, "0 12 * * *", "1h", "UTC", &[Restart]),
        spec(WindowKind::Allow, "0 8 * * *", "2h", "UTC", &[Apply]),
    ]);
    check(
        "restart-only deny, apply-only allow",
        &w,
        &[
            ("2026-01-05T12:30Z", Restart, closed("2026-01-05T13:00Z")),
            ("2026-01-05T12:30Z", Apply, closed("2026-01-06T08:00Z")), // the deny is not Apply's
            ("2026-01-05T09:00Z", Apply, OPEN),
            ("2026-01-05T09:00Z", Restart, OPEN),
            ("2026-01-05T20:00Z", Restart, OPEN), // the allow is not Restart's
        ],
    );
}

#[test]
fn long_durations_and_horizon() {
    // Duration longer than the period: always covered.
    check("hourly 90m allow", &compile(&[allow("0 * * * *", "90m", "UTC")]), &[("2026-01-05T00:59Z", Apply, OPEN)]);
    // A deny that never ends within the horizon.
    check("daily 25h deny", &compile(&[deny("0 0 * * *", "25h", "UTC")]), &[("2026-01-05T10:00Z", Apply, NEVER)]);
    // A leap-day window: beyond 400 days from March 2026, within it from March 2027.
    let w = compile(&[allow("0 0 29 2 *", "1h", "UTC")]);
    check(
        "leap day",
        &w,
        &[("2026-03-01T00:00Z", Apply, NEVER), ("2027-03-01T00:00Z", Apply, closed("2028-02-29T00:00Z"))],
    );
}

#[test]
fn adversarial_schedule_is_bounded() {
    // One-second allow and deny ranges at the same starts: never open; the search must stop.
    let w = compile(&[allow("* * * * *", "1s", "UTC"), deny("* * * * *", "1s", "UTC")]);
    let started = std::time::Instant::now();
    assert_eq!(w.evaluate(at("2026-01-05T12:00:30Z"), Apply), Decision::Closed { next_open: None });
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

fn compile_err(specs: &[tugboat::window::WindowSpec]) -> WindowError {
    Windows::compile(specs).expect_err("must not compile")
}

#[test]
fn errors_name_index_and_field() {
    let ok = allow("0 8 * * 1-5", "1h", "UTC");
    let e = compile_err(&[ok.clone(), allow("0 8 * * *", "1h", "Mars/Olympus")]);
    assert_eq!(e.to_string(), r#"changeWindows[1].timeZone: unknown time zone "Mars/Olympus""#);
    assert_eq!((e.index(), e.field()), (1, "timeZone"));

    let cases: &[(&str, &str)] = &[
        ("61 8 * * *", "changeWindows[2].schedule: invalid cron schedule \"61 8 * * *\": "),
        ("0 8 * *", "changeWindows[2].schedule: invalid cron schedule \"0 8 * *\": expected 5 fields"),
        ("0 0 8 * * *", "changeWindows[2].schedule: invalid cron schedule \"0 0 8 * * *\": expected 5 fields"),
        ("@daily", "changeWindows[2].schedule: invalid cron schedule \"@daily\": expected 5 fields"),
        ("a b c d e", "changeWindows[2].schedule: invalid cron schedule \"a b c d e\": "),
        ("0 0 31 2 *", "changeWindows[2].schedule: invalid cron schedule \"0 0 31 2 *\": never matches any date"),
    ];
    for &(schedule, want) in cases {
        let e = compile_err(&[ok.clone(), ok.clone(), allow(schedule, "1h", "UTC")]);
        assert!(e.to_string().starts_with(want), "{schedule}: got {e}");
        assert_eq!((e.index(), e.field()), (2, "schedule"));
    }

    let mut zero = ok.clone();
    zero.duration = Duration::ZERO;
    let e = compile_err(&[zero]);
    assert_eq!(e.to_string(), "changeWindows[0].duration: must be greater than zero");

    let e = compile_err(&[ok.clone(), spec(WindowKind::Deny, "0 8 * * *", "1h", "UTC", &[])]);
    assert_eq!(e.to_string(), "changeWindows[1].gates: must name at least one gate (Restart, Apply)");
    assert_eq!(e.field(), "gates");
}

#[test]
fn accepted_inputs() {
    // Names, case-insensitive fields, `?`, 7 = Sunday, repeated gates, and huge durations.
    let mut huge = deny("0 0 1 1 *", "1h", "Asia/Kolkata");
    huge.duration = Duration::MAX;
    let specs = [
        allow("0 8 ? jan-dec mon-fri", "1h", "Europe/Berlin"),
        allow("*/15 0-6 1,15 * 7", "5m", "America/New_York"),
        spec(WindowKind::Allow, "0 0 * * *", "1h", "UTC", &[Gate::Apply, Gate::Apply]),
        huge,
    ];
    let w = compile(&specs);
    // The huge deny started 2026-01-01 and never ends.
    check("huge deny", &w, &[("2026-06-01T00:00Z", Apply, NEVER)]);
}
