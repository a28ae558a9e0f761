//! The container image recipe: hadolint finds nothing, and the image is multi-stage, non-root,
//! and built from exactly what the binary needs. `tests/helm_install.rs` runs the image itself.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let output = Command::new(root().join("testenv/hadolint.sh"))
        .arg(root().join("Dockerfile"))
        .output()
        .expect("run testenv/hadolint.sh");
    assert!(
        output.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_image_is_multi_stage_non_root_and_runs_the_operator() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let stages: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("FROM ")).collect();
    // A build stage and a prebuilt-binary stage feed one runtime stage: the image the tests run
    // (BINARY=prebuilt) and the image users build (the default) differ only in where the
    // binary was compiled.
    assert!(stages.iter().any(|s| s.ends_with(" AS build")), "a build stage: {stages:?}");
    assert!(stages.iter().any(|s| s.starts_with("scratch AS prebuilt")), "a prebuilt stage: {stages:?}");
    assert!(stages.contains(&"${BINARY} AS binary"), "the binary comes from the chosen stage: {stages:?}");
    assert_eq!(stages.last(), Some(&"${BASE}"), "one runtime stage, last");
    assert!(lines.contains(&"ARG BINARY=build"), "users compile in the image by default");
    let runtime = &dockerfile[dockerfile.rfind("FROM ${BASE}").expect("runtime stage")..];
    assert!(runtime.contains("COPY --from=binary /out/tugboat /usr/local/bin/tugboat"));
    let user = lines.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "runs as non-root: {user}");
    assert!(dockerfile.contains("cargo build --release --locked --bin tugboat"), "the locked release binary");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/tugboat"]"#));
    let chart = std::fs::read_to_string(root().join("charts/tugboat/values.yaml")).expect("values");
    assert!(
        chart.contains(&format!("runAsUser: {}", user.split(':').next().unwrap_or_default())),
        "chart uses the image's user"
    );
}

#[test]
fn dockerignore_sends_only_the_sources() {
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    let lines: Vec<&str> = ignore.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    assert_eq!(lines.first(), Some(&"*"), "everything is excluded first (target/ is gigabytes)");
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    for copied in dockerfile.lines().filter_map(|l| l.strip_prefix("COPY ")).filter(|l| !l.starts_with("--from")) {
        for source in copied.split_whitespace().rev().skip(1) {
            let name = source.trim_end_matches('/');
            assert!(
                lines.iter().any(|l| l.trim_start_matches('!').trim_end_matches('/') == name),
                "{name} is copied but excluded by .dockerignore"
            );
        }
    }
}
