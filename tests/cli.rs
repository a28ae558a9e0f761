//! The `tugboat` command line: `render` and `crds` as users run them.

use std::process::Command;

fn tugboat(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tugboat")).args(args).output().expect("run tugboat");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn manifests() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tugboat-cli-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("nested")).expect("dir");
    std::fs::write(
        dir.join("nested/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: ${REPLICAS:-2}\n  template:\n    spec:\n      containers:\n        - name: web\n          image: app:${SERVICE_TAG:-stable}\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: ${VALUE}\n",
    )
    .expect("write");
    dir
}

#[test]
fn render_prints_the_substituted_objects() {
    let dir = manifests();
    let (ok, stdout, stderr) =
        tugboat(&["render", dir.to_str().expect("utf-8"), "--var", "SERVICE_TAG=development", "--var", "VALUE=a: b"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("image: app:development"), "{stdout}");
    assert!(stdout.contains("replicas: 2"), "typed value: {stdout}");
    assert!(stdout.contains("v: 'a: b'") || stdout.contains("v: \"a: b\""), "value stays one string: {stdout}");
    assert!(stdout.find("kind: ConfigMap") < stdout.find("kind: Deployment"), "files sorted: {stdout}");
}

#[test]
fn render_in_strict_mode_names_the_file_line_and_variable() {
    let dir = manifests();
    let (ok, _, stderr) = tugboat(&["render", dir.to_str().expect("utf-8"), "--strict"]);
    assert!(!ok);
    assert!(stderr.contains("cm.yaml") && stderr.contains("line 6") && stderr.contains("VALUE"), "{stderr}");
}

#[test]
fn render_refuses_a_malformed_variable_flag() {
    let (ok, _, stderr) = tugboat(&["render", ".", "--var", "1BAD=x"]);
    assert!(!ok);
    assert!(stderr.contains("1BAD"), "{stderr}");
}

#[test]
fn crds_prints_every_kind() {
    let (ok, stdout, _) = tugboat(&["crds"]);
    assert!(ok);
    for kind in ["GitOpsApplication", "Webhook", "OutgoingWebhook"] {
        assert!(stdout.contains(&format!("kind: {kind}")), "{kind} missing");
    }
}
