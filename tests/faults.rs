//! Faults: the operator killed during a deployment and under webhook load, the Git server
//! gone, a 50 MB file in the repository, an alias bomb in a manifest, and an apply that hangs
//! in admission. Each test
//! asserts the recovery or the message. (The API server restart is in `fault_apiserver.rs`,
//! alone in its binary because it stops the shared API server.)
//!
//! Long variants: `cargo test --test faults -- --ignored`.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tugboat::api::{DeploymentResult, GitOpsApplication};

use support::cluster::eventually;
use support::fixture::{Fixture, demo_manifests, is_ready_at, ready};
use support::http::try_request;
use support::operator::Operator;
use support::triggers::{Accepted, carried_out};

fn slow_rollout() -> Vec<(&'static str, String)> {
    // minReadySeconds keeps the rollout (and so the deployment) running for a while.
    let mut files = demo_manifests();
    files[0].1 = files[0].1.replace("  replicas: ${REPLICAS:-2}\n", "  replicas: 1\n  minReadySeconds: 8\n");
    files
}

async fn events_with_reason(f: &Fixture, reason: &str) -> usize {
    let events: Api<Event> = Api::namespaced(f.client.clone(), &f.ns.name);
    let list = events.list(&ListParams::default()).await.expect("events");
    list.items.iter().filter(|e| e.reason.as_deref() == Some(reason)).count()
}

#[tokio::test]
async fn sigkill_during_a_deployment_resumes_it_and_records_it_once() {
    let Some(mut f) = Fixture::start("kill-deploy", &slow_rollout(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({"healthTimeout": "120s"}))).await;
    let running = f
        .wait_app("shop", "a deployment running", |a| {
            a.status.as_ref().and_then(|s| s.deployments.last()).is_some_and(|d| d.result == DeploymentResult::Running)
        })
        .await;
    let id = running.status.expect("status").deployments.last().expect("deployment").id.clone();
    f.operator.kill();
    f.operator = Operator::start(&f.ns.name, &[]).await;

    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    let mut app = None;
    for _ in 0..300 {
        match f.apps().get("shop").await {
            Ok(a) if is_ready_at(&a, &sha) => {
                app = Some(a);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let Some(app) = app else {
        let web =
            deployments.get_opt("web").await.ok().flatten().map(|d| (d.spec.map(|s| s.min_ready_seconds), d.status));
        panic!(
            "the interrupted deployment did not finish; live Deployment: {web:#?}; app: {:#?}",
            f.apps().get("shop").await.ok().and_then(|a| a.status)
        );
    };
    let deployments = app.status.expect("status").deployments;
    assert_eq!(deployments.len(), 1, "one deployment recorded: {deployments:#?}");
    assert_eq!(deployments[0].id, id, "resumed under its own id");
    assert_eq!(deployments[0].result, DeploymentResult::Succeeded);
    let resumed = eventually("a DeploymentResumed event", Duration::from_secs(10), || async {
        let n = events_with_reason(&f, "DeploymentResumed").await;
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(resumed, 1);
    // The kill may land between the status write and the Started event: at most one.
    assert!(events_with_reason(&f, "DeploymentStarted").await <= 1, "never started twice");
}

/// Every handled trigger seen on the application, by sequence.
type Handled = Arc<Mutex<support::triggers::Handled>>;

fn watch_handled(f: &Fixture, name: &str) -> (Handled, tokio::task::JoinHandle<()>) {
    let handled: Handled = Arc::default();
    let seen = handled.clone();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(f.apps(), config).default_backoff().applied_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(app)) = stream.next().await {
            let app: GitOpsApplication = app;
            if let Some(t) = app.status.and_then(|s| s.last_trigger) {
                seen.lock().expect("lock").insert(t.sequence, t);
            }
        }
    });
    (handled, task)
}

/// What one client got: the accepted calls, and how many answers of each status.
type ClientResult = (Vec<Accepted>, BTreeMap<u16, usize>);

/// Calls the endpoint from `clients` tasks until `stop` is set; returns the accepted ids.
fn load(
    port: Arc<Mutex<u16>>,
    path: String,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<ClientResult>> {
    (0..clients)
        .map(|client| {
            let (port, path, stop) = (port.clone(), path.clone(), stop.clone());
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                let mut codes = BTreeMap::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    let port = *port.lock().expect("lock");
                    let target = format!("{path}?SERVICE_TAG=c{client}n{n}");
                    let Some(reply) = try_request(port, "POST", &target, &[], b"").await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    *codes.entry(reply.status).or_default() += 1;
                    if reply.status == 202 {
                        accepted.push(Accepted::from_reply(&reply.json(), "shop").expect("a 202 names its sequence"));
                    }
                }
                (accepted, codes)
            })
        })
        .collect()
}

async fn sigkill_under_load(seconds_before: u64, seconds_after: u64, kills: usize) {
    let Some(mut f) = Fixture::start("kill-load", &demo_manifests(), &["--rate-limit-per-source", "0"]).await else {
        return;
    };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    let (handled, watch) = watch_handled(&f, "shop");

    let port = Arc::new(Mutex::new(f.operator.trigger_port));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients = load(port.clone(), path, 8, stop.clone());
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_secs(seconds_before)).await;
        f.operator.kill();
        f.operator = Operator::start(&f.ns.name, &["--rate-limit-per-source", "0"]).await;
        *port.lock().expect("lock") = f.operator.trigger_port;
    }
    tokio::time::sleep(Duration::from_secs(seconds_after)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut accepted = Vec::new();
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    for client in clients {
        let (ids, counts) = client.await.expect("client");
        accepted.extend(ids);
        for (code, n) in counts {
            *codes.entry(code).or_default() += n;
        }
    }
    eprintln!("under load: answers by status {codes:?}; {} accepted", accepted.len());
    assert!(!accepted.is_empty(), "some calls were accepted: {codes:?}");

    // Wait until the last recorded trigger is handled and its deployment finished.
    f.wait_app("shop", "every recorded trigger handled", |a| {
        let last_recorded = tugboat::trigger::record::recorded(kube::ResourceExt::annotations(a)).map(|t| t.sequence);
        let status = a.status.as_ref();
        last_recorded.is_some()
            && last_recorded == status.and_then(|s| s.last_trigger.as_ref()).map(|t| t.sequence)
            && status.and_then(|s| s.deployments.last()).is_some_and(|d| d.finished_at.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let the watch deliver the last change
    watch.abort();
    let handled = handled.lock().expect("lock").clone();
    let per_record = carried_out(&accepted, &handled)
        .unwrap_or_else(|problem| panic!("every accepted call is carried out exactly once: {problem}"));
    // A call recorded just before the kill, whose answer died with the process, may also be
    // carried out (the caller saw an error and may retry): counted, not an error.
    let merged: i64 = per_record.keys().map(|sequence| 1 + handled[sequence].coalesced_count).sum();
    eprintln!(
        "under load: {} accepted calls (and {} recorded whose answer was cut off) carried out by {} handled triggers",
        accepted.len(),
        merged - accepted.len() as i64,
        per_record.len()
    );
}

#[tokio::test]
async fn sigkill_under_webhook_load_carries_out_every_accepted_call_once() {
    sigkill_under_load(2, 2, 1).await;
}

#[tokio::test]
#[ignore = "long: run with `cargo test --test faults -- --ignored`"]
async fn sigkill_under_webhook_load_long() {
    sigkill_under_load(10, 10, 5).await;
}

#[tokio::test]
async fn a_stopped_git_server_is_reported_and_deploying_resumes_when_it_returns() {
    let Some(mut f) = Fixture::start("git-down", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({"updates": {"mechanism": "Polling", "interval": "5s"}}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;

    f.server.stop();
    let app = f
        .wait_app("shop", "Ready=False because the source is unreachable", |a| {
            ready(a).is_some_and(|(s, reason, _)| s == "False" && reason == "Unreachable")
        })
        .await;
    let (_, _, message) = ready(&app).expect("ready");
    assert!(message.contains(&f.server.addr().to_string()), "names the repository: {message}");
    let live = f.apps().get("shop").await.expect("app");
    assert_eq!(
        live.status.and_then(|s| s.last_applied_revision),
        Some(format!("main@sha1:{sha}")),
        "what was deployed stays deployed"
    );

    f.server.resume().expect("git server back on its port");
    let next = f
        .commit(&[("deploy/extra.yaml", Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n"))], "extra");
    f.wait_app("shop", "Ready again at the new commit", |a| is_ready_at(a, &next)).await;
}

#[tokio::test]
async fn a_repository_with_a_50_mb_file_deploys_with_bounded_memory() {
    let Some(f) = Fixture::start("big-file", &demo_manifests(), &[]).await else { return };
    // 50 MB that does not compress: the pack really carries 50 MB.
    let mut big = vec![0u8; 50 * 1024 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in big.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    f.work.write("assets/big.bin", &big).expect("write big file");
    drop(big);
    let sha = f.commit(&[], "a 50 MB asset next to the manifests");
    let before = f.operator.memory_kib().expect("operator memory");
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "deployed despite the 50 MB file", |a| is_ready_at(a, &sha)).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(config_maps.get("web-config").await.is_ok(), "the manifests rendered and applied");
    let (peak, now) = f.operator.memory_kib().expect("operator memory");
    eprintln!("operator RSS: {} KiB at start, peak {peak} KiB, {now} KiB after the deployment", before.1);
    // The file is fetched by git into the cache, never read by tugboat: memory stays far below it.
    assert!(peak < 50 * 1024, "peak RSS {peak} KiB is below the size of the file");
}

/// A 1 MiB anchored string behind 1,000 aliases would be 1 GiB rendered (it killed the leader,
/// then every new leader): the render budget stops it, names the file, applies nothing, and
/// the operator's memory stays bounded.
#[tokio::test]
async fn an_alias_bomb_stalls_its_application_with_bounded_memory_and_applies_nothing() {
    let mut bomb = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  big: &big {}\n",
        "x".repeat(1 << 20)
    );
    for i in 0..1000 {
        bomb.push_str(&format!("  copy{i}: *big\n"));
    }
    let mut files = demo_manifests();
    files.push(("deploy/bomb.yaml", bomb));
    let Some(f) = Fixture::start("alias-bomb", &files, &[]).await else { return };
    let before = f.operator.memory_kib().expect("operator memory");
    f.create_app("shop", f.app_spec(json!({}))).await;
    let app = f
        .wait_app("shop", "stalled on the render budget", |a| {
            ready(a).is_some_and(|(status, reason, _)| status == "False" && reason == "RenderBudgetExceeded")
        })
        .await;
    let (_, _, message) = ready(&app).expect("a Ready condition");
    assert!(
        message.contains("deploy/bomb.yaml: document 1, line ") && message.contains("--render-max-bytes"),
        "{message}"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(config_maps.get("web-config").await.is_err(), "nothing of the application was applied");
    assert!(config_maps.get("bomb").await.is_err(), "nor the bomb");
    let (peak, now) = f.operator.memory_kib().expect("operator memory");
    eprintln!("operator RSS: {} KiB at start, peak {peak} KiB, {now} KiB after the refusal", before.1);
    // Unbounded, the copies alone are 1 GiB; the 64 MiB budget keeps the peak to a few times it.
    assert!(peak < 400 * 1024, "peak RSS {peak} KiB stays far below the 1 GiB the aliases would copy");
}

/// A TCP listener that accepts connections and never answers: admission calls to it hang.
fn black_hole() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn); // keep it open, say nothing
            if held.len() > 64 {
                break;
            }
        }
    });
    (port, handle)
}

/// Makes admission of ConfigMaps in the fixture's namespace hang (a validating webhook whose
/// endpoint accepts and never answers) for `timeout_seconds` per call; returns the black hole
/// (keep it alive) and the configuration's name (delete it to make admission work again).
async fn hang_configmap_admission(
    f: &Fixture,
    prefix: &str,
    timeout_seconds: u32,
) -> (std::thread::JoinHandle<()>, String) {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let (port, hole) = black_hole();
    let name = format!("{prefix}-{}", f.ns.name);
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(f.client.clone());
    let configuration: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "hang.tugboat.dev",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/validate"), "caBundle": ""},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": f.ns.name}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": timeout_seconds,
        }]
    }))
    .expect("webhook configuration");
    configurations.create(&PostParams::default(), &configuration).await.expect("create webhook configuration");
    (hole, name)
}

async fn hanging_admission(timeout_seconds: u32) {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let Some(f) = Fixture::start("hang", &demo_manifests(), &[]).await else { return };
    let (_hole, name) = hang_configmap_admission(&f, "tugboat-hang", timeout_seconds).await;
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(f.client.clone());

    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    let app = f
        .wait_app("shop", "Ready=False naming the object whose admission hung", |a| {
            ready(a).is_some_and(|(s, _, m)| s == "False" && m.contains("web-config"))
        })
        .await;
    let (_, reason, message) = ready(&app).expect("ready");
    eprintln!("hanging admission reported as {reason}: {message}");
    assert!(message.contains("hang.tugboat.dev"), "names the admission webhook: {message}");
    assert!(
        message.contains("deadline") || message.contains("timeout") || message.contains("Timeout"),
        "says it timed out: {message}"
    );
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(deployments.get_opt("web").await.expect("get").is_none(), "nothing half-applied: the dry run failed first");

    configurations.delete(&name, &DeleteParams::default()).await.expect("delete webhook configuration");
    f.request_reconcile("shop").await;
    f.wait_app("shop", "deployed once admission works again", |a| is_ready_at(a, &sha)).await;
}

/// A call's `rollout-restart` that meets an apply failing for a while (admission hangs) is
/// carried out once the failure passes, without another call: the claimed trigger is not lost.
#[tokio::test]
async fn a_calls_restart_is_carried_out_after_an_apply_that_failed_for_a_while() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let Some(f) = Fixture::start("restart-kept", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;

    let (_hole, name) = hang_configmap_admission(&f, "tugboat-restart-kept", 2).await;
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(f.client.clone());

    let reply = try_request(f.operator.trigger_port, "POST", &format!("{path}?rollout-restart=all"), &[], b"")
        .await
        .expect("endpoint");
    assert_eq!(reply.status, 202, "{}", reply.body);
    let app = f
        .wait_app("shop", "Ready=False while admission hangs", |a| {
            ready(a).is_some_and(|(s, _, m)| s == "False" && m.contains("retrying"))
        })
        .await;
    let record = app.status.as_ref().and_then(|s| s.deployments.last().cloned()).expect("a deployment");
    assert_eq!(record.result, DeploymentResult::Running, "still under way, with the call: {record:?}");
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    let restarted_at = |d: &Deployment| {
        d.spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get("kubectl.kubernetes.io/restartedAt")
            .cloned()
    };
    assert_eq!(restarted_at(&deployments.get("web").await.expect("web")), None, "not restarted yet");

    configurations.delete(&name, &DeleteParams::default()).await.expect("delete webhook configuration");
    // No second call, no reconcile request: the retry carries the restart out.
    eventually("the call's restart, once admission works", Duration::from_secs(90), || async {
        restarted_at(&deployments.get("web").await.ok()?)
    })
    .await;
    f.wait_app("shop", "the deployment finished", |a| ready(a).is_some_and(|(s, _, _)| s == "True")).await;
}

#[tokio::test]
async fn an_apply_that_hangs_in_admission_is_reported_and_applies_nothing() {
    hanging_admission(3).await;
}

#[tokio::test]
#[ignore = "long: run with `cargo test --test faults -- --ignored`"]
async fn an_apply_that_hangs_for_the_longest_admission_timeout() {
    hanging_admission(30).await;
}
