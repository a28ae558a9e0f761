//! Fault: the API server restarts mid-run (stopped and started again with the same flags by
//! `testenv/apiserver.sh`). Alone in its test binary, since it stops the shared API server.
//!
//! - An operator without leader election rides it out: calls during the outage answer 503
//!   with a clear message (nothing is accepted that could not be recorded), and once the API
//!   server is back, watches resume, a new commit deploys and calls are carried out.
//! - A leader that cannot renew its Lease for longer than the renew deadline exits non-zero
//!   (so that it never deploys next to a new leader) and says why.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use support::cluster::{TestNamespace, eventually, kubeconfig_path};
use support::fixture::{Fixture, demo_manifests, is_ready_at};
use support::http::post;
use support::operator::Operator;

fn apiserver(action: &str) {
    let state: PathBuf = kubeconfig_path().parent().expect("testenv state dir").to_owned();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testenv/apiserver.sh");
    let status = Command::new(script).arg(&state).arg(action).status().expect("run testenv/apiserver.sh");
    assert!(status.success(), "testenv/apiserver.sh {action} failed");
}

/// Starts the API server again even if the test fails half-way, so later tests find it.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        apiserver("start");
    }
}

#[tokio::test]
async fn an_api_server_restart_is_ridden_out_and_a_leader_that_cannot_renew_steps_down() {
    let Some(f) = Fixture::start("apiserver", &demo_manifests(), &["--leader-election=false"]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    // A second operator, leading with a Lease in its own (empty) namespace.
    let other = TestNamespace::create(&f.client, "apiserver-lease").await;
    let mut leader = Operator::start_named(&other.name, "tugboat-lease-holder", &[]).await;
    eventually("the second operator leads", Duration::from_secs(30), || async {
        leader.log_text().contains("became the leader").then_some(())
    })
    .await;

    apiserver("stop");
    let restart = Restart;
    let during = post(f.operator.trigger_port, &format!("{path}?SERVICE_TAG=outage"), &[], b"").await;
    assert_eq!(during.status, 503, "a call that cannot be recorded is not accepted: {during:?}");
    assert!(during.body.contains("error"), "says why: {}", during.body);
    let next = f.commit(
        &[("deploy/extra.yaml", Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n"))],
        "during the outage",
    );
    let exit = eventually("the leader that cannot renew exits", Duration::from_secs(60), || {
        let exited = leader.exited();
        async move { exited }
    })
    .await;
    assert!(!exit.success(), "a lost lease exits non-zero: {exit:?}");
    let log = leader.log_text();
    assert!(log.contains("could not renew the leader lease"), "says why: {log}");
    assert!(log.contains("lost the leader lease"), "{log}");
    drop(restart);

    // Back: the operator without election resumes its watches and works.
    f.request_reconcile("shop").await;
    f.wait_app("shop", "the commit made during the outage deployed", |a| is_ready_at(a, &next)).await;
    let reply = eventually("calls accepted again", Duration::from_secs(60), || async {
        let reply = post(f.operator.trigger_port, &format!("{path}?SERVICE_TAG=back"), &[], b"").await;
        (reply.status == 202).then_some(reply)
    })
    .await;
    let id = reply.json()["triggerId"].as_str().expect("triggerId").to_owned();
    f.wait_app("shop", "the call after the restart carried out", |a| {
        a.status.as_ref().and_then(|s| s.last_trigger.as_ref()).is_some_and(|t| t.id == id)
    })
    .await;
}
