//! The kubectl experience: `kubectl explain` shows the doc comments of the Rust types.

mod support;

use std::process::{Command, Output};

use support::cluster::{self, kubeconfig_path, testenv_bin};

/// Runs the test control plane's kubectl with `args`.
fn kubectl(args: &[&str]) -> Output {
    Command::new(testenv_bin("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .expect("run kubectl")
}

/// Applies one file of `examples/` into `namespace`.
fn apply_example(namespace: &str, file: &str) {
    let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let apply = kubectl(&["apply", "-n", namespace, "-f", &path]);
    assert!(apply.status.success(), "{file}: {}", String::from_utf8_lossy(&apply.stderr));
}

fn explain(path: &str) -> String {
    let output = kubectl(&["explain", path]);
    assert!(output.status.success(), "kubectl explain {path}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first paragraph of the doc comment just above `anchor` in `file`, as one line.
fn doc_comment_above(file: &str, anchor: &str) -> String {
    let source = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).expect("source");
    let at = source.find(anchor).expect("anchor in source");
    let docs: Vec<&str> = source[..at]
        .lines()
        .rev()
        .skip_while(|l| !l.trim_start().starts_with("///"))
        .take_while(|l| l.trim_start().starts_with("///") || l.trim_start().starts_with("#["))
        .filter_map(|l| l.trim_start().strip_prefix("///"))
        .collect();
    docs.into_iter().rev().map(str::trim).collect::<Vec<_>>().join(" ").trim().to_owned()
}

#[tokio::test]
async fn kubectl_explain_shows_the_doc_comments() {
    let Some(client) = cluster::client().await else { return };
    cluster::install_crds(&client).await;
    let field = explain("gitopsapplications.spec.changeWindows.timeZone");
    let doc = doc_comment_above("src/api/application.rs", "pub time_zone");
    assert!(!doc.is_empty() && field.contains(&doc), "explain shows {doc:?}: {field}");
    let kind = explain("webhooks");
    assert!(kind.contains("An incoming trigger endpoint"), "the kind is described: {kind}");
    assert!(!kind.contains("Auto-generated"), "{kind}");
    let status = explain("gitopsapplications.status.deployments.result");
    assert!(status.contains("How it ended"), "{status}");
}

/// `kubectl get` answers "is it working, and what is live" from the printer columns.
#[tokio::test]
async fn kubectl_get_shows_health_live_revision_and_last_call() {
    let Some(client) = cluster::client().await else { return };
    cluster::install_crds(&client).await;
    let ns = cluster::TestNamespace::create(&client, "columns").await;
    apply_example(&ns.name, "webhook-generic.yaml");
    let get = |kind: &str| {
        let output = kubectl(&["get", kind, "-n", &ns.name]);
        String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or_default().to_owned()
    };
    let header = get("wh");
    for column in ["READY", "PROVIDER", "PATH", "LAST CALL", "LAST DELIVERY", "MESSAGE"] {
        assert!(header.contains(column), "{column} in {header:?}");
    }
    apply_example(&ns.name, "change-windows.yaml");
    let header = get("gapp");
    for column in ["READY", "STATUS", "REVISION", "LAST DEPLOY", "MESSAGE"] {
        assert!(header.contains(column), "{column} in {header:?}");
    }
}
