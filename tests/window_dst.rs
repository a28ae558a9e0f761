//! DST transitions: starts stay on local wall-clock time; durations are elapsed time; a start in
//! a skipped hour moves to the end of the gap, one in a repeated hour fires on the first pass.

mod common;

use common::*;
use tugboat::window::Gate::Apply;

#[test]
fn berlin_daily_2200_4h() {
    let w = compile(&[allow("0 22 * * *", "4h", "Europe/Berlin")]);
    check(
        "Berlin 22:00+4h",
        &w,
        &[
            // Spring forward 2026-03-29 02:00 CET -> 03:00 CEST.
            ("2026-03-28T21:59:59+01:00", Apply, closed("2026-03-28T22:00+01:00")),
            ("2026-03-28T22:00+01:00", Apply, OPEN),
            ("2026-03-29T01:59:59+01:00", Apply, OPEN),
            ("2026-03-29T02:59:59+02:00", Apply, OPEN), // = 00:59:59Z, still inside 4 elapsed hours
            ("2026-03-29T03:00+02:00", Apply, closed("2026-03-29T22:00+02:00")),
            ("2026-03-29T21:59:59+02:00", Apply, closed("2026-03-29T22:00+02:00")),
            ("2026-03-29T22:00+02:00", Apply, OPEN), // 22:00 local after the change (20:00Z)
            ("2026-03-30T01:59:59+02:00", Apply, OPEN),
            ("2026-03-30T02:00+02:00", Apply, closed("2026-03-30T22:00+02:00")),
            // Fall back 2026-10-25 03:00 CEST -> 02:00 CET.
            ("2026-10-24T22:00+02:00", Apply, OPEN),
            ("2026-10-25T01:59:59+02:00", Apply, OPEN),
            ("2026-10-25T02:00+02:00", Apply, closed("2026-10-25T22:00+01:00")),
            ("2026-10-25T02:30+01:00", Apply, closed("2026-10-25T22:00+01:00")), // repeated hour
            ("2026-10-25T21:59:59+01:00", Apply, closed("2026-10-25T22:00+01:00")),
            ("2026-10-25T22:00+01:00", Apply, OPEN), // 22:00 local after the change (21:00Z)
            ("2026-10-26T01:59:59+01:00", Apply, OPEN),
            ("2026-10-26T02:00+01:00", Apply, closed("2026-10-26T22:00+01:00")),
        ],
    );
}

#[test]
fn berlin_daily_0230_1h_skipped_and_repeated_hour() {
    let w = compile(&[allow("30 2 * * *", "1h", "Europe/Berlin")]);
    check(
        "Berlin 02:30+1h",
        &w,
        &[
            ("2026-03-28T02:30+01:00", Apply, OPEN),
            // 02:30 does not exist on 2026-03-29: the start moves to 03:00 CEST (end of the gap).
            ("2026-03-29T01:59:59+01:00", Apply, closed("2026-03-29T03:00+02:00")),
            ("2026-03-29T03:00+02:00", Apply, OPEN),
            ("2026-03-29T03:59:59+02:00", Apply, OPEN),
            ("2026-03-29T04:00+02:00", Apply, closed("2026-03-30T02:30+02:00")),
            ("2026-03-30T02:30+02:00", Apply, OPEN),
            // 02:30 happens twice on 2026-10-25: the window starts once, on the first (CEST) pass,
            // and lasts one elapsed hour, into the second pass.
            ("2026-10-25T02:29:59+02:00", Apply, closed("2026-10-25T02:30+02:00")),
            ("2026-10-25T02:30+02:00", Apply, OPEN),
            ("2026-10-25T02:59:59+02:00", Apply, OPEN),
            ("2026-10-25T02:15+01:00", Apply, OPEN),
            ("2026-10-25T02:30+01:00", Apply, closed("2026-10-26T02:30+01:00")),
            ("2026-10-26T02:30+01:00", Apply, OPEN),
        ],
    );
}

#[test]
fn new_york_daily_2200_4h() {
    let w = compile(&[allow("0 22 * * *", "4h", "America/New_York")]);
    check(
        "New York 22:00+4h",
        &w,
        &[
            // Spring forward 2026-03-08 02:00 EST -> 03:00 EDT.
            ("2026-03-07T21:59:59-05:00", Apply, closed("2026-03-07T22:00-05:00")),
            ("2026-03-07T22:00-05:00", Apply, OPEN),
            ("2026-03-08T01:59:59-05:00", Apply, OPEN),
            ("2026-03-08T02:59:59-04:00", Apply, OPEN), // 06:59:59Z
            ("2026-03-08T03:00-04:00", Apply, closed("2026-03-08T22:00-04:00")),
            ("2026-03-08T22:00-04:00", Apply, OPEN),
            // Fall back 2026-11-01 02:00 EDT -> 01:00 EST: 22:00 EDT + 4h ends at the second 01:00.
            ("2026-10-31T22:00-04:00", Apply, OPEN),
            ("2026-11-01T01:30-04:00", Apply, OPEN),
            ("2026-11-01T00:59:59-05:00", Apply, OPEN),
            ("2026-11-01T01:00-05:00", Apply, closed("2026-11-01T22:00-05:00")),
            ("2026-11-01T21:59:59-05:00", Apply, closed("2026-11-01T22:00-05:00")),
            ("2026-11-01T22:00-05:00", Apply, OPEN),
        ],
    );
}

#[test]
fn new_york_daily_0230_and_0130_1h() {
    let w = compile(&[allow("30 2 * * *", "1h", "America/New_York")]);
    check(
        "New York 02:30+1h",
        &w,
        &[
            ("2026-03-08T01:59:59-05:00", Apply, closed("2026-03-08T03:00-04:00")), // skipped 02:30
            ("2026-03-08T03:00-04:00", Apply, OPEN),
            ("2026-03-08T03:59:59-04:00", Apply, OPEN),
            ("2026-03-08T04:00-04:00", Apply, closed("2026-03-09T02:30-04:00")),
            // In New York the repeated hour is 01:00-02:00, so 02:30 happens once (EST).
            ("2026-11-01T01:30-05:00", Apply, closed("2026-11-01T02:30-05:00")),
            ("2026-11-01T02:30-05:00", Apply, OPEN),
            ("2026-11-01T03:30-05:00", Apply, closed("2026-11-02T02:30-05:00")),
        ],
    );
    let w = compile(&[allow("30 1 * * *", "1h", "America/New_York")]);
    check(
        "New York 01:30+1h (repeated hour)",
        &w,
        &[
            ("2026-11-01T01:29:59-04:00", Apply, closed("2026-11-01T01:30-04:00")),
            ("2026-11-01T01:30-04:00", Apply, OPEN),
            ("2026-11-01T01:15-05:00", Apply, OPEN),
            ("2026-11-01T01:30-05:00", Apply, closed("2026-11-02T01:30-05:00")),
        ],
    );
}

#[test]
fn deny_window_across_dst_blocks_local_2200() {
    // A deny-only configuration over the Berlin spring-forward night.
    let w = compile(&[deny("0 22 * * *", "4h", "Europe/Berlin")]);
    check(
        "Berlin deny 22:00+4h",
        &w,
        &[
            ("2026-03-28T21:59:59+01:00", Apply, OPEN),
            ("2026-03-28T23:00+01:00", Apply, closed("2026-03-29T03:00+02:00")),
            ("2026-03-29T03:00+02:00", Apply, OPEN),
        ],
    );
}
