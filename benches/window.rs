//! Cost of one `Windows::evaluate` over three windows in two zones, open and closed cases.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use tugboat::window::{Gate, WindowKind, WindowSpec, Windows};

fn spec(kind: WindowKind, schedule: &str, hours: u64, tz: &str, gates: &[Gate]) -> WindowSpec {
    WindowSpec {
        kind,
        schedule: schedule.to_owned(),
        duration: Duration::from_secs(hours * 3600),
        time_zone: tz.to_owned(),
        gates: gates.to_vec(),
    }
}

fn bench(c: &mut Criterion) {
    let both = [Gate::Restart, Gate::Apply];
    let windows = Windows::compile(&[
        spec(WindowKind::Allow, "0 8 * * 1-5", 10, "Europe/Berlin", &both),
        spec(WindowKind::Deny, "0 12 * * *", 1, "Europe/Berlin", &both),
        spec(WindowKind::Deny, "0 22 * * 5", 56, "America/New_York", &[Gate::Restart]),
    ])
    .expect("bench windows compile");
    let cases = [
        ("open", "2026-01-07T09:30:00Z"),           // Wednesday morning
        ("closed_lunch", "2026-01-07T11:30:00Z"),   // inside the deny: next open 13:00 CET
        ("closed_weekend", "2026-01-10T12:00:00Z"), // Saturday: next open Monday 08:00
    ];
    let mut group = c.benchmark_group("evaluate_3_windows");
    for (name, now) in cases {
        let now: Timestamp = now.parse().expect("bench instant");
        group.bench_function(name, |b| b.iter(|| windows.evaluate(black_box(now), black_box(Gate::Restart))));
    }
    group.finish();

    // Compiling checks that a schedule matches some date: cheap for a real one, a search to
    // croner's limit for one that never matches (`0 0 31 2 *`).
    let mut group = c.benchmark_group("compile_one_window");
    for (name, schedule) in [("daily", "0 8 * * *"), ("never_matches", "0 0 31 2 *")] {
        let specs = [spec(WindowKind::Allow, schedule, 1, "UTC", &both)];
        group.bench_function(name, |b| b.iter(|| Windows::compile(black_box(&specs))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
