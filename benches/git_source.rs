//! Times the git-CLI source against the real smart-HTTP test server: medians of N runs, std timing only.
//!
//! Why: the module shells out to git, and this shows what that costs for the operations a
//! reconcile performs (resolve, no-change ensure, fetch of a moved ref, first clone, read).
//! Run: `cargo bench --bench git_source` (`BENCH_RUNS=5` for a quick pass).

#[allow(dead_code)]
#[path = "../tests/support/git_repo.rs"]
mod git_repo;
#[allow(dead_code)]
#[path = "../tests/support/git_server.rs"]
mod git_server;

use std::time::{Duration, Instant};

use git_repo::{TempDir, Workdir, init_bare};
use git_server::{GitServer, loopback_cache_options};
use tugboat::source::{GitCache, GitReference, SourceSpec};

const REPO: &str = "team/app.git";
const FILES: usize = 200;
const HISTORY: usize = 10;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A ConfigMap-sized manifest, different per file and commit so packs are realistic.
fn manifest(i: usize, generation: usize) -> String {
    let data: String = (0..20).map(|k| format!("  key{k}: \"value-{i}-{k}-{generation}\"\n")).collect();
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: apps\ndata:\n{data}")
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: one quick pass then.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runs: usize =
        if smoke { 1 } else { std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(15) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    let root = TempDir::new("tugboat-bench-root").expect("temp dir");
    init_bare(root.path(), REPO).expect("bare repo");
    let server = GitServer::start(root.path(), None).expect("server");
    let writer = Workdir::clone_from(&server.url(REPO)).expect("clone");
    for generation in 0..HISTORY {
        for i in (0..FILES).filter(|i| generation == 0 || i % 10 == generation) {
            writer.write(&format!("deploy/cm-{i:03}.yaml"), manifest(i, generation)).expect("write");
        }
        writer.commit(&format!("generation {generation}")).expect("commit");
    }
    writer.push().expect("push");

    let spec = SourceSpec { url: server.url(REPO), reference: GitReference::Branch("main".into()), credentials: None };
    let cache_dir = TempDir::new("tugboat-bench-cache").expect("temp dir");
    let cache = GitCache::new(cache_dir.path().join("shared"), loopback_cache_options());
    let mut rows: Vec<(&str, Duration, usize, String)> = Vec::new();

    // (d) first clone into an empty cache: resolve excluded, ensure = init + one full fetch.
    let revision = rt.block_on(cache.resolve(&spec)).expect("resolve");
    let mut samples = Vec::new();
    for n in 0..runs {
        let fresh = GitCache::new(cache_dir.path().join(format!("cold-{n}")), loopback_cache_options());
        let started = Instant::now();
        rt.block_on(fresh.ensure(&spec, &revision)).expect("ensure");
        samples.push(started.elapsed());
        assert_eq!(fresh.fetch_count(), 1);
    }
    rows.push((
        "(d) first clone into empty cache (ensure)",
        median(samples),
        runs,
        format!("{FILES} files, {HISTORY} commits"),
    ));

    // (a) resolve of an unchanged ref: one ls-remote.
    rt.block_on(cache.ensure(&spec, &revision)).expect("ensure");
    let mut samples = Vec::new();
    for _ in 0..runs * 2 {
        let started = Instant::now();
        let again = rt.block_on(cache.resolve(&spec)).expect("resolve");
        samples.push(started.elapsed());
        assert_eq!(again, revision);
    }
    rows.push(("(a) resolve unchanged branch (ls-remote)", median(samples), runs * 2, String::new()));

    // (b) no-change ensure: the commit is cached, so no network at all.
    let (fetches, requests) = (cache.fetch_count(), server.request_log().len());
    let mut samples = Vec::new();
    for _ in 0..runs * 4 {
        let started = Instant::now();
        rt.block_on(cache.ensure(&spec, &revision)).expect("ensure");
        samples.push(started.elapsed());
    }
    assert_eq!(
        (cache.fetch_count(), server.request_log().len()),
        (fetches, requests),
        "no-change ensure hit the network"
    );
    rows.push(("(b) no-change ensure (cached commit)", median(samples), runs * 4, "0 fetches, 0 requests".into()));

    // (c) fetch of a moved ref: one new commit changing one file; resolve outside the timing.
    let (mut fetch_samples, mut both_samples) = (Vec::new(), Vec::new());
    for n in 0..runs {
        writer.write(&format!("deploy/cm-{:03}.yaml", n % FILES), manifest(n, 1000 + n)).expect("write");
        writer.commit(&format!("move {n}")).expect("commit");
        writer.push().expect("push");
        let started = Instant::now();
        let moved = rt.block_on(cache.resolve(&spec)).expect("resolve");
        let resolved = Instant::now();
        rt.block_on(cache.ensure(&spec, &moved)).expect("ensure");
        fetch_samples.push(resolved.elapsed());
        both_samples.push(started.elapsed());
    }
    rows.push(("(c) fetch of moved ref (ensure)", median(fetch_samples), runs, "1 new commit".into()));
    rows.push(("(c') resolve + fetch of moved ref", median(both_samples), runs, String::new()));

    // (e) read all manifests of the cached revision from the object store.
    let revision = rt.block_on(cache.resolve(&spec)).expect("resolve");
    let mut samples = Vec::new();
    for _ in 0..runs * 2 {
        let started = Instant::now();
        let files = rt.block_on(cache.read_files(&spec, &revision, "deploy")).expect("read");
        samples.push(started.elapsed());
        assert_eq!(files.len(), FILES);
    }
    rows.push(("(e) read_files of 200 manifests (cached)", median(samples), runs * 2, String::new()));

    println!("git CLI source ({}), medians:", git_version());
    println!("| operation | median | runs | notes |\n|---|---:|---:|---|");
    for (name, median, runs, notes) in rows {
        println!("| {name} | {} | {runs} | {notes} |", ms(median));
    }
}

fn git_version() -> String {
    let output = std::process::Command::new("git").arg("--version").output();
    output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}
