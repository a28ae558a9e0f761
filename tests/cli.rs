//! The `tugboat` command line: `render` and `crds` as users run them.

mod support;

use std::process::Command;

use support::cluster::testenv_tool;

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

fn fixture(path: &str) -> String {
    format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn render_builds_an_overlay_and_a_chart_as_the_operator_does() {
    let (Some(kustomize), Some(helm)) = (testenv_tool("kustomize"), testenv_tool("helm")) else { return };
    let (kustomize, helm) = (kustomize.to_string_lossy().into_owned(), helm.to_string_lossy().into_owned());
    let overlay = fixture("kustomize-shop/overlays/staging");
    let (ok, stdout, stderr) =
        tugboat(&["render", &overlay, "--kustomize-bin", &kustomize, "--var", "SERVICE_TAG=canary"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("name: staging-settings-t6k9ftg69d"), "the generator's hashed name: {stdout}");
    assert!(stdout.contains("TAG: canary"), "substituted after the build: {stdout}");
    assert!(stdout.contains("kustomize-shop/overlays/staging (kustomize output), document 1"), "{stdout}");

    let chart = fixture("helm-shop/chart");
    let args = ["render", &chart, "--helm-bin", &helm, "--helm-values", "values-prod.yaml", "--release-name", "shop"];
    let (ok, stdout, stderr) = tugboat(&[&args[..], &["--namespace", "team-a"]].concat());
    assert!(ok, "{stderr}");
    assert!(stdout.contains("RELEASE_NAMESPACE: team-a"), ".Release.Namespace: {stdout}");
    assert!(stdout.contains("replicas: 3"), "values-prod.yaml: {stdout}");

    let escape = fixture("hostile/kustomize-escape/app");
    let (ok, _, stderr) = tugboat(&["render", &escape, "--kustomize-bin", &kustomize]);
    assert!(!ok && stderr.contains("leads outside the repository"), "{stderr}");
    let (ok, _, stderr) = tugboat(&["render", &overlay, "--kustomize-bin", "/nonexistent/kustomize"]);
    assert!(!ok && stderr.contains("set --kustomize-bin"), "{stderr}");
}
