//! End to end: outgoing webhooks against a real receiver — templates, signatures checked by
//! the `standardwebhooks` package, CloudEvents parsed by the official SDK, retries, 410,
//! wait-for-completion in every mode, gates, the SSRF guard, values kept inside their URL
//! component, status URLs kept on the called origin, and resuming after a SIGKILL.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tugboat::api::{DeliveryRecord, DeploymentResult, OutgoingWebhook};

use support::fixture::{Fixture, SLOW_ROLLOUT, WAIT, demo_manifests, is_ready_at, ready};
use support::operator::Operator;
use support::receiver::{Receiver, Reply, independent_check};

/// Loopback receivers are allowed explicitly; only the SSRF test runs without this.
const ALLOW_LOOPBACK: &[&str] = &["--egress-allow", "127.0.0.0/8"];
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hooks(f: &Fixture) -> Api<OutgoingWebhook> {
    Api::namespaced(f.client.clone(), &f.ns.name)
}

/// Creates a hook and waits until the operator has judged its spec (Ready set).
async fn create_hook(f: &Fixture, name: &str, spec: Value) {
    let hook: OutgoingWebhook = serde_json::from_value(json!({
        "apiVersion": "tugboat.dev/v1alpha1", "kind": "OutgoingWebhook", "metadata": {"name": name}, "spec": spec
    }))
    .expect("hook");
    hooks(f).create(&PostParams::default(), &hook).await.expect("create hook");
    f.eventually(&format!("hook {name} judged"), || async {
        let h = hooks(f).get(name).await.ok()?;
        h.status?.conditions.iter().any(|c| c.type_ == "Ready").then_some(())
    })
    .await;
}

/// The hook's Ready condition as (status, reason, message).
fn hook_ready(hook: &OutgoingWebhook) -> (String, String, String) {
    let c = hook.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready")).expect("Ready");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Waits until the hook's deliveries satisfy `check`; returns the hook.
async fn wait_hook(f: &Fixture, name: &str, what: &str, check: impl Fn(&[DeliveryRecord]) -> bool) -> OutgoingWebhook {
    let api = hooks(f);
    let mut last = None;
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(hook) = api.get(name).await {
                let deliveries = hook.status.as_ref().map(|s| s.deliveries.clone()).unwrap_or_default();
                if check(&deliveries) {
                    return hook;
                }
                last = hook.status.clone();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for hook {name}: {what}; last status: {last:#?}"))
}

fn final_result(deliveries: &[DeliveryRecord]) -> Option<&DeliveryRecord> {
    deliveries.iter().rev().find(|d| d.result.is_final())
}

async fn wait_requests(receiver: &Receiver, path: &str, count: usize) -> Vec<support::receiver::Recorded> {
    support::cluster::eventually(&format!("{count} requests to {path}"), WAIT, || async {
        let found = receiver.requests_to(path);
        (found.len() >= count).then_some(found)
    })
    .await
}

#[tokio::test]
async fn a_deployment_sends_started_then_finished_templated_signed_and_as_cloudevents() {
    let Some(f) = Fixture::start("owh-events", &demo_manifests(), ALLOW_LOOPBACK).await else { return };
    let receiver = Receiver::start().await;
    f.create_secret("out-secret", &[("secret", SECRET)]).await;
    create_hook(
        &f,
        "humanitec",
        json!({
            "url": receiver.url("/events/${app_id}?env=${env_id}&event=${event}"),
            "headers": {"X-Env": "${env_id}", "X-Tag": "${SERVICE_TAG}", "X-Deploy": "${deploy_id}"},
            "payload": {"app": "${app_id}", "env": "${env_id}", "event": "${event}", "status": "${status}",
                        "deploy": "${deploy_id}", "revision": "${revision}", "by": "${triggered_by}", "tag": "${SERVICE_TAG}",
                        "nested": [{"n": 1, "at": "${triggered_at}"}]},
            "secretRef": {"name": "out-secret"},
            "triggers": ["deployment.started", "deployment.finished"],
            "applications": {"matchLabels": {"team": "shop"}},
        }),
    )
    .await;
    create_hook(
        &f,
        "events",
        json!({
            "url": receiver.url("/ce"),
            "format": "cloudevents",
            "secretRef": {"name": "out-secret", "key": "secret"},
            "triggers": ["application.created", "deployment.finished", "trigger.received"],
        }),
    )
    .await;
    let sha = f.head();
    let app: tugboat::api::GitOpsApplication = serde_json::from_value(json!({
        "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
        "metadata": {"name": "shop", "labels": {"team": "shop"}},
        "spec": f.app_spec(json!({"variables": {"SERVICE_TAG": "blue"}})),
    }))
    .expect("app");
    f.apps().create(&PostParams::default(), &app).await.expect("create app");
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;

    // Humanitec-style hook: started, then finished, every variable filled in.
    let calls = wait_requests(&receiver, "/events/shop", 2).await;
    let events: Vec<String> = calls.iter().map(|c| c.json()["event"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(events, ["deployment.started", "deployment.finished"], "{calls:#?}");
    let app = f.apps().get("shop").await.expect("app");
    let deploy_id = app.status.as_ref().and_then(|s| s.deployments.last()).map(|d| d.id.clone()).expect("deployment");
    for (call, status) in calls.iter().zip(["started", "succeeded"]) {
        let event = call.json()["event"].as_str().unwrap_or_default().to_owned();
        assert_eq!(call.method, "POST");
        assert_eq!(call.target, format!("/events/shop?env={}&event={event}", f.ns.name));
        assert_eq!(call.header("x-env"), Some(f.ns.name.as_str()));
        assert_eq!(call.header("x-tag"), Some("blue"));
        assert_eq!(call.header("x-deploy"), Some(deploy_id.as_str()));
        assert_eq!(call.header("content-type"), Some("application/json"));
        let body = call.json();
        assert_eq!(body["app"], "shop");
        assert_eq!(body["env"], f.ns.name.as_str());
        assert_eq!(body["status"], status);
        assert_eq!(body["deploy"], deploy_id.as_str());
        assert_eq!(body["revision"], format!("main@sha1:{sha}"));
        assert_eq!(body["by"], "git");
        assert_eq!(body["tag"], "blue");
        assert_eq!(body["nested"][0]["n"], 1, "non-string values keep their type");
        assert!(body["nested"][0]["at"].as_str().is_some_and(|t| t.starts_with("20")), "{body}");
        // The published Standard Webhooks verifier accepts the signature.
        let checked = independent_check(call, Some(SECRET), false);
        assert_eq!(checked["verified_payload"], body);
        assert!(call.header("webhook-id").is_some_and(|id| id.starts_with("msg_")));
    }
    assert_ne!(calls[0].header("webhook-id"), calls[1].header("webhook-id"), "one id per event");

    // CloudEvents: parsed by the official SDK, signed too.
    let ce = wait_requests(&receiver, "/ce", 2).await;
    let mut types = Vec::new();
    for call in &ce {
        assert!(call.header("content-type").is_some_and(|t| t.starts_with("application/cloudevents+json")));
        let checked = independent_check(call, Some(SECRET), true);
        let event = &checked["cloudevent"];
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"].as_str(), call.header("webhook-id"), "the CloudEvents id is the delivery id");
        assert_eq!(
            event["source"],
            format!("/apis/tugboat.dev/v1alpha1/namespaces/{}/gitopsapplications/shop", f.ns.name)
        );
        assert_eq!(event["data"]["app_id"], "shop", "default payload: the event itself");
        types.push(event["type"].as_str().unwrap_or_default().to_owned());
    }
    assert!(types.contains(&"dev.tugboat.application.created".to_owned()), "{types:?}");
    assert!(types.contains(&"dev.tugboat.deployment.finished".to_owned()), "{types:?}");

    // Status: each delivery recorded, Ready.
    let hook = wait_hook(&f, "humanitec", "two deliveries", |d| {
        d.iter().filter(|d| d.result.as_str() == "succeeded").count() >= 2
    })
    .await;
    let status = hook.status.clone().expect("status");
    assert!(status.deliveries.iter().all(|d| d.http_status == Some(200) && d.attempt == 1 && d.application == "shop"));
    assert!(status.deliveries.iter().all(|d| d.duration_ms.is_some()));
    assert!(status.pending.is_empty(), "{:?}", status.pending);
    assert_eq!(hook_ready(&hook).0, "True");

    // A webhook call: trigger.received, with the call's variables.
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    let reply = support::http::post(f.operator.trigger_port, &format!("{path}?SERVICE_TAG=green"), &[], b"").await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let received = support::cluster::eventually("trigger.received delivered", WAIT, || async {
        receiver.requests_to("/ce").into_iter().find(|c| c.json()["type"] == "dev.tugboat.trigger.received")
    })
    .await;
    let event = independent_check(&received, Some(SECRET), true);
    assert_eq!(event["cloudevent"]["data"]["variables"]["SERVICE_TAG"], "green");
    assert!(event["cloudevent"]["data"]["triggered_by"].as_str().is_some_and(|s| s.starts_with("Webhook/deploy")));
    // The deployment it causes reports the call's variables and who triggered it.
    let redeploy = support::cluster::eventually("the triggered deployment finished", WAIT, || async {
        receiver.requests_to("/events/shop").into_iter().filter(|c| c.json()["event"] == "deployment.finished").nth(1)
    })
    .await;
    assert_eq!(redeploy.json()["tag"], "green");
    assert!(redeploy.json()["by"].as_str().is_some_and(|s| s.starts_with("Webhook/deploy")), "{}", redeploy.json());
}

#[tokio::test]
async fn retries_keep_one_webhook_id_and_410_stops_at_once() {
    let Some(f) = Fixture::start("owh-retry", &demo_manifests(), ALLOW_LOOPBACK).await else { return };
    let receiver = Receiver::start().await;
    receiver.script("POST", "/flaky", vec![Reply::status(500), Reply::status(500), Reply::status(200)]);
    receiver.script("POST", "/gone", vec![Reply::status(410)]);
    let retry = json!({"maxAttempts": 5, "initialBackoff": "1s", "maxBackoff": "2s"});
    create_hook(
        &f,
        "flaky",
        json!({"url": receiver.url("/flaky"), "triggers": ["deployment.started"], "retry": retry}),
    )
    .await;
    create_hook(&f, "gone", json!({"url": receiver.url("/gone"), "triggers": ["deployment.started"], "retry": retry}))
        .await;
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "deployment", |a| is_ready_at(a, &sha)).await;

    let hook = wait_hook(&f, "flaky", "delivered on the third attempt", |d| final_result(d).is_some()).await;
    let deliveries = hook.status.expect("status").deliveries;
    let summary: Vec<(i32, &str, Option<i32>)> =
        deliveries.iter().map(|d| (d.attempt, d.result.as_str(), d.http_status)).collect();
    assert_eq!(summary, [(1, "retrying", Some(500)), (2, "retrying", Some(500)), (3, "succeeded", Some(200))]);
    assert!(deliveries.iter().all(|d| d.id == deliveries[0].id), "one id in status");
    let calls = receiver.requests_to("/flaky");
    assert_eq!(calls.len(), 3, "{calls:#?}");
    let ids: Vec<_> = calls.iter().map(|c| c.header("webhook-id").map(str::to_owned)).collect();
    assert!(ids.iter().all(|id| id.is_some() && *id == ids[0]), "the same webhook-id on every retry: {ids:?}");
    assert_eq!(ids[0].as_deref(), Some(deliveries[0].id.as_str()));

    let gone = wait_hook(&f, "gone", "given up", |d| final_result(d).is_some()).await;
    let deliveries = gone.status.clone().expect("status").deliveries;
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    assert_eq!(
        (deliveries[0].attempt, deliveries[0].result.as_str(), deliveries[0].http_status),
        (1, "failed", Some(410))
    );
    assert!(deliveries[0].error.as_deref().is_some_and(|e| e.contains("410")), "{deliveries:?}");
    let (ready, reason, message) = hook_ready(&gone);
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "DeliveryFailed"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.requests_to("/gone").len(), 1, "410 is never retried");

    // Deliveries are counted by result on /metrics.
    let metrics = support::http::request(f.operator.probe_port, "GET", "/metrics", &[], b"").await;
    let count = |result: &str| {
        metrics
            .body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("tugboat_deliveries_total{{result=\"{result}\"}} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(count("retrying") >= 2.0 && count("succeeded") >= 1.0 && count("failed") >= 1.0, "{}", metrics.body);
}

/// A wait-for-completion hook on `path`, reading `$.state` and `$.progress`.
fn waiting_hook(receiver: &Receiver, path: &str, from: &str, timeout: &str) -> Value {
    json!({
        "url": receiver.url(path),
        "triggers": ["deployment.finished"],
        "waitForCompletion": {
            "statusUrlFrom": from, "statusUrlJsonPath": "$.links.status", "statusJsonPath": "$.state",
            "success": ["SUCCESS"], "canceled": ["CANCELED"], "terminal": ["TERMINAL", "FAILED"],
            "progressJsonPath": "$.progress", "pollInterval": "1s", "timeout": timeout,
        },
    })
}

#[tokio::test]
async fn wait_for_completion_reaches_every_final_state_in_every_mode_and_times_out() {
    let Some(f) = Fixture::start("owh-wait", &demo_manifests(), ALLOW_LOOPBACK).await else { return };
    let receiver = Receiver::start().await;
    let mut expected = Vec::new();
    for (mode, from) in [("same", "SameUrl"), ("location", "LocationHeader"), ("field", "ResponseField")] {
        for (outcome, state, result) in [
            ("success", "SUCCESS", "succeeded"),
            ("canceled", "CANCELED", "canceled"),
            ("terminal", "FAILED", "terminal"),
        ] {
            let name = format!("{mode}-{outcome}");
            let call = format!("/run/{name}");
            let (status_path, method) = match mode {
                "same" => (call.clone(), "GET"),
                _ => (format!("/status/{name}"), "GET"),
            };
            match mode {
                "same" => receiver.script("POST", &call, vec![Reply::json(200, json!({"state": "RUNNING"}))]),
                "location" => receiver.script("POST", &call, vec![Reply::status(202).header("location", &status_path)]),
                _ => receiver.script(
                    "POST",
                    &call,
                    vec![Reply::json(200, json!({"links": {"status": receiver.url(&status_path)}}))],
                ),
            }
            receiver.script(
                method,
                &status_path,
                vec![
                    Reply::json(200, json!({"state": "RUNNING", "progress": "1 of 2"})),
                    Reply::json(200, json!({"state": state, "progress": format!("{outcome}: 2 of 2")})),
                ],
            );
            create_hook(&f, &name, waiting_hook(&receiver, &call, from, "1m")).await;
            expected.push((name, status_path, result, outcome));
        }
    }
    receiver.script("POST", "/run/slow", vec![Reply::status(202).header("location", "/status/slow")]);
    receiver.script(
        "GET",
        "/status/slow",
        vec![Reply::json(200, json!({"state": "RUNNING", "progress": "still going"}))],
    );
    create_hook(&f, "slow", waiting_hook(&receiver, "/run/slow", "LocationHeader", "3s")).await;

    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "deployment", |a| is_ready_at(a, &sha)).await;

    for (name, status_path, result, outcome) in &expected {
        let hook = wait_hook(&f, name, "a final state", |d| final_result(d).is_some()).await;
        let status = hook.status.clone().expect("status");
        let last = final_result(&status.deliveries).expect("final").clone();
        assert_eq!(last.result.as_str(), *result, "{name}: {:#?}", status.deliveries);
        assert_eq!(last.progress.as_deref(), Some(format!("{outcome}: 2 of 2").as_str()), "{name}: progress in status");
        assert!(status.pending.is_empty(), "{name}");
        let polls = receiver.requests().into_iter().filter(|r| r.method == "GET" && r.path == *status_path).count();
        assert!(polls >= 2, "{name}: polled {status_path} until final ({polls} polls)");
        assert_eq!(hook_ready(&hook).0, if *result == "succeeded" { "True" } else { "False" }, "{name}");
    }
    let slow = wait_hook(&f, "slow", "timed out", |d| final_result(d).is_some()).await;
    let last = final_result(&slow.status.as_ref().expect("status").deliveries).expect("final").clone();
    assert_eq!(last.result.as_str(), "failed");
    assert!(last.error.as_deref().is_some_and(|e| e.contains("within 3s")), "{last:?}");
    assert_eq!(last.progress.as_deref(), Some("still going"));
}

/// A value set by a trigger call stays inside its URL component: `../../script` is sent as
/// `..%2F..%2Fscript`, so it cannot move the call, with the hook's credentials, to another path.
#[tokio::test]
async fn a_variable_set_by_a_call_is_percent_encoded_in_the_url_and_cannot_move_the_path() {
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tagged\ndata:\n  tag: ${SERVICE_TAG:-stable}\n";
    let Some(f) = Fixture::start("owh-urlenc", &[("deploy/config.yaml", config.to_owned())], ALLOW_LOOPBACK).await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    f.create_secret("out-secret", &[("secret", SECRET)]).await;
    create_hook(
        &f,
        "tagged",
        json!({
            "url": receiver.url("/hooks/${SERVICE_TAG}?tag=${SERVICE_TAG}"),
            "headers": {"Authorization": "Bearer hook-token"},
            "secretRef": {"name": "out-secret"},
            "triggers": ["trigger.received"],
        }),
    )
    .await;
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({"variables": {"SERVICE_TAG": "blue"}}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    let reply =
        support::http::post(f.operator.trigger_port, &format!("{path}?SERVICE_TAG=..%2F..%2Fscript"), &[], b"").await;
    assert_eq!(reply.status, 202, "{reply:?}");

    let hook = wait_hook(&f, "tagged", "the trigger.received delivery", |d| final_result(d).is_some()).await;
    let last = final_result(&hook.status.as_ref().expect("status").deliveries).expect("final").clone();
    assert_eq!((last.result.as_str(), last.http_status), ("succeeded", Some(200)), "{last:?}");
    // One request, at the encoded segment; nothing reached /script, with or without credentials.
    let calls = receiver.requests();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let call = &calls[0];
    assert_eq!(call.path, "/hooks/..%2F..%2Fscript", "the value is one path segment: {call:#?}");
    assert_eq!(call.target, "/hooks/..%2F..%2Fscript?tag=..%2F..%2Fscript");
    assert!(receiver.requests_to("/script").is_empty(), "the value moved the path");
    assert_eq!(call.header("authorization"), Some("Bearer hook-token"));
    let checked = independent_check(call, Some(SECRET), false);
    assert_eq!(checked["verified_payload"]["variables"]["SERVICE_TAG"], "../../script", "the body keeps the raw value");
}

/// A status URL on another origin than the call is never polled (a poll would carry the
/// hook's headers and signature there) unless the hook sets `allowOtherOrigins`.
#[tokio::test]
async fn a_status_url_on_another_origin_is_not_polled_unless_the_hook_allows_it() {
    let Some(f) = Fixture::start("owh-origin", &demo_manifests(), ALLOW_LOOPBACK).await else { return };
    let receiver = Receiver::start().await;
    // Another port: another origin.
    let other = Receiver::start().await;
    f.create_secret("out-secret", &[("secret", SECRET)]).await;
    for (name, from, allow) in
        [("location", "LocationHeader", false), ("field", "ResponseField", false), ("allowed", "LocationHeader", true)]
    {
        let call = format!("/run/{name}");
        let status = other.url(&format!("/status/{name}"));
        let answer = match from {
            "LocationHeader" => Reply::status(202).header("location", &status),
            _ => Reply::json(200, json!({"links": {"status": status}})),
        };
        receiver.script("POST", &call, vec![answer]);
        other.script("GET", &format!("/status/{name}"), vec![Reply::json(200, json!({"state": "SUCCESS"}))]);
        let mut spec = waiting_hook(&receiver, &call, from, "1m");
        spec["headers"] = json!({"X-Api-Key": "hook-key"});
        spec["secretRef"] = json!({"name": "out-secret"});
        spec["waitForCompletion"]["allowOtherOrigins"] = json!(allow);
        create_hook(&f, name, spec).await;
    }
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "deployment", |a| is_ready_at(a, &sha)).await;

    let origin = format!("http://127.0.0.1:{}", receiver.port);
    for name in ["location", "field"] {
        let hook = wait_hook(&f, name, "a final state", |d| final_result(d).is_some()).await;
        let last = final_result(&hook.status.as_ref().expect("status").deliveries).expect("final").clone();
        assert_eq!(last.result.as_str(), "failed", "{name}: {last:?}");
        let error = last.error.clone().unwrap_or_default();
        let refused = format!(
            "status URL {:?} is not on the called origin {origin}: refused",
            other.url(&format!("/status/{name}"))
        );
        assert!(error.contains(&refused) && error.contains("allowOtherOrigins"), "{name}: {error}");
        let (status, reason, message) = hook_ready(&hook);
        assert_eq!((status.as_str(), reason.as_str()), ("False", "DeliveryFailed"), "{name}: {message}");
        assert!(message.contains(&refused), "{name}: {message}");
        // The call itself went out, with the hook's header and signature.
        let calls = receiver.requests_to(&format!("/run/{name}"));
        assert_eq!(calls.len(), 1, "{name}: {calls:#?}");
        assert_eq!(calls[0].header("x-api-key"), Some("hook-key"));
        assert!(calls[0].header("webhook-signature").is_some_and(|s| s.starts_with("v1,")), "{:?}", calls[0]);
    }

    // Allowed: polled on the other origin until final, carrying the header and signature.
    let hook = wait_hook(&f, "allowed", "a final state", |d| final_result(d).is_some()).await;
    let last = final_result(&hook.status.as_ref().expect("status").deliveries).expect("final").clone();
    assert_eq!(last.result.as_str(), "succeeded", "{last:?}");
    let polls = other.requests_to("/status/allowed");
    assert!(!polls.is_empty() && polls.iter().all(|p| p.method == "GET"), "{polls:#?}");
    assert_eq!(polls[0].header("x-api-key"), Some("hook-key"));
    assert!(polls[0].header("webhook-signature").is_some_and(|s| s.starts_with("v1,")), "{:?}", polls[0]);
    // The refused hooks sent nothing there, so none of their headers or signatures.
    let elsewhere: Vec<_> = other.requests().into_iter().filter(|r| r.path != "/status/allowed").collect();
    assert!(elsewhere.is_empty(), "polled another origin: {elsewhere:#?}");
}

#[tokio::test]
async fn a_failing_before_deployment_gate_applies_nothing() {
    let Some(f) = Fixture::start("owh-before", &demo_manifests(), ALLOW_LOOPBACK).await else { return };
    let receiver = Receiver::start().await;
    receiver.script("POST", "/approve", vec![Reply::status(500)]);
    create_hook(
        &f,
        "approval",
        json!({"url": receiver.url("/approve"), "triggers": ["deployment.started"], "gate": "BeforeDeployment",
               "retry": {"maxAttempts": 2, "initialBackoff": "1s"}}),
    )
    .await;
    f.create_app("shop", f.app_spec(json!({}))).await;
    let app = f
        .wait_app("shop", "deployment failed by the gate", |a| {
            a.status.as_ref().and_then(|s| s.deployments.last()).is_some_and(|d| d.result == DeploymentResult::Failed)
        })
        .await;
    let (status, reason, message) = ready(&app).expect("Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "GateFailed"), "{message}");
    assert!(message.contains("OutgoingWebhook/approval") && message.contains("HTTP 500"), "{message}");
    assert!(message.contains("nothing was applied"), "{message}");
    assert_eq!(receiver.requests_to("/approve").len(), 2, "both attempts made");
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(deployments.get_opt("web").await.expect("get").is_none(), "nothing applied");
    assert!(config_maps.get_opt("web-config").await.expect("get").is_none(), "nothing applied");
    assert!(app.status.expect("status").inventory.is_empty());
    let hook = hooks(&f).get("approval").await.expect("hook");
    assert_eq!(final_result(&hook.status.expect("status").deliveries).map(|d| d.result.as_str()), Some("failed"));
}

#[tokio::test]
async fn a_failing_after_deployment_gate_marks_the_deployment_failed() {
    let Some(f) = Fixture::start("owh-after", &demo_manifests(), ALLOW_LOOPBACK).await else { return };
    let receiver = Receiver::start().await;
    receiver.script("POST", "/smoke", vec![Reply::status(202).header("location", "/smoke/1")]);
    receiver.script(
        "GET",
        "/smoke/1",
        vec![Reply::json(200, json!({"state": "FAILED", "progress": "3 tests failed"}))],
    );
    create_hook(
        &f,
        "smoke-tests",
        json!({"url": receiver.url("/smoke"), "triggers": ["deployment.finished"], "gate": "AfterDeployment",
               "waitForCompletion": {"statusUrlFrom": "LocationHeader", "statusJsonPath": "$.state", "success": ["PASSED"],
                                     "terminal": ["FAILED"], "progressJsonPath": "$.progress", "pollInterval": "1s"}}),
    )
    .await;
    f.create_app("shop", f.app_spec(json!({}))).await;
    let app = f
        .wait_app("shop", "deployment failed by the gate", |a| {
            a.status.as_ref().and_then(|s| s.deployments.last()).is_some_and(|d| d.result == DeploymentResult::Failed)
        })
        .await;
    let (status, reason, message) = ready(&app).expect("Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "GateFailed"), "{message}");
    assert!(message.contains("OutgoingWebhook/smoke-tests") && message.contains("terminal"), "{message}");
    // The rollout itself happened (and was healthy) before the gate ran.
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(deployments.get_opt("web").await.expect("get").is_some());
    let healthy =
        app.status.as_ref().expect("status").conditions.iter().any(|c| c.type_ == "Healthy" && c.status == "True");
    assert!(healthy, "health was checked first");
    let call = &receiver.requests_to("/smoke")[0];
    assert_eq!(call.json()["event"], "deployment.finished");
    assert_eq!(call.json()["status"], "succeeded");
    let hook = hooks(&f).get("smoke-tests").await.expect("hook");
    let last = final_result(&hook.status.expect("status").deliveries).cloned().expect("final");
    assert_eq!((last.result.as_str(), last.progress.as_deref()), ("terminal", Some("3 tests failed")));
}

#[tokio::test]
async fn the_ssrf_guard_refuses_loopback_and_metadata_addresses_and_templates_fail_clearly() {
    let Some(f) = Fixture::start("owh-ssrf", &demo_manifests(), &[]).await else { return };
    let receiver = Receiver::start().await;
    let once = json!({"maxAttempts": 3, "initialBackoff": "1s"});
    create_hook(&f, "loopback", json!({"url": receiver.url("/x"), "triggers": ["deployment.started"], "retry": once}))
        .await;
    create_hook(
        &f,
        "metadata",
        json!({"url": "http://169.254.169.254/latest/meta-data/", "triggers": ["deployment.started"], "retry": once}),
    )
    .await;
    create_hook(&f, "typo", json!({"url": "https://example.invalid/${appid}", "triggers": ["deployment.started"]}))
        .await;
    create_hook(&f, "broken", json!({"url": "https://example.invalid/${app_id", "triggers": ["deployment.started"]}))
        .await;
    let broken = hooks(&f).get("broken").await.expect("hook");
    let (status, reason, message) = hook_ready(&broken);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(message.starts_with("spec.url: unclosed ${"), "{message}");

    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "deployment", |a| is_ready_at(a, &sha)).await;
    for (name, address, kind) in [("loopback", "127.0.0.1", "loopback"), ("metadata", "169.254.169.254", "link-local")]
    {
        let hook = wait_hook(&f, name, "refused", |d| final_result(d).is_some()).await;
        let deliveries = hook.status.clone().expect("status").deliveries;
        assert_eq!(deliveries.len(), 1, "refusals are not retried: {deliveries:#?}");
        let error = deliveries[0].error.clone().unwrap_or_default();
        assert!(error.contains(address) && error.contains(kind) && error.contains("--egress-allow"), "{error}");
        let (status, reason, message) = hook_ready(&hook);
        assert_eq!((status.as_str(), reason.as_str()), ("False", "ConfigurationError"));
        assert!(message.contains(kind), "{message}");
    }
    assert!(receiver.requests().is_empty(), "nothing reached the receiver");
    let typo = wait_hook(&f, "typo", "template error", |d| final_result(d).is_some()).await;
    let (status, reason, message) = hook_ready(&typo);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ConfigurationError"));
    assert!(message.contains("spec.url: ${appid} has no value"), "{message}");
}

#[tokio::test]
async fn an_operator_killed_during_a_retry_series_resumes_it_without_a_second_first_attempt() {
    let Some(mut f) = Fixture::start("owh-kill", &demo_manifests(), ALLOW_LOOPBACK).await else { return };
    let receiver = Receiver::start().await;
    receiver.script("POST", "/down", vec![Reply::status(503)]);
    create_hook(
        &f,
        "down",
        json!({"url": receiver.url("/down"), "triggers": ["deployment.started"],
               "retry": {"maxAttempts": 3, "initialBackoff": "4s", "maxBackoff": "4s"}}),
    )
    .await;
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "deployment", |a| is_ready_at(a, &sha)).await;
    wait_hook(&f, "down", "first attempt recorded", |d| d.iter().any(|d| d.attempt == 1)).await;
    f.operator.kill();
    let before = receiver.requests_to("/down").len();
    assert!((1..=2).contains(&before), "{before}");

    f.operator = Operator::start(&f.ns.name, ALLOW_LOOPBACK).await;
    let hook = wait_hook(&f, "down", "the series finished", |d| final_result(d).is_some()).await;
    let deliveries = hook.status.expect("status").deliveries;
    let attempts: Vec<i32> = deliveries.iter().map(|d| d.attempt).collect();
    assert_eq!(*attempts.last().expect("attempt"), 3, "{deliveries:#?}");
    assert_eq!(attempts.iter().filter(|a| **a == 1).count(), 1, "no second first attempt: {deliveries:#?}");
    let calls = receiver.requests_to("/down");
    assert!(calls.len() <= 3, "at most one call per attempt: {calls:#?}");
    assert!(calls.len() >= 2, "the series went on after the restart");
    let ids: Vec<_> = calls.iter().map(|c| c.header("webhook-id")).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(deliveries.iter().all(|d| Some(d.id.as_str()) == ids[0]));
}

#[tokio::test]
async fn deferred_created_and_deleted_events_are_sent_once_also_across_a_restart() {
    let Some(mut f) = Fixture::start("owh-lifecycle", &demo_manifests(), ALLOW_LOOPBACK).await else { return };
    let receiver = Receiver::start().await;
    create_hook(
        &f,
        "lifecycle",
        json!({"url": receiver.url("/life"), "triggers": ["application.created", "deployment.deferred", "application.deleted"],
               "payload": {"event": "${event}", "status": "${status}", "message": "${message}", "app": "${app_id}"}}),
    )
    .await;
    // A deny window that is always open holds every deployment back.
    let closed =
        json!({"changeWindows": [{"kind": "deny", "schedule": "* * * * *", "duration": "2h", "timeZone": "UTC"}]});
    f.create_app("shop", f.app_spec(closed)).await;
    let calls = wait_requests(&receiver, "/life", 2).await;
    let events: Vec<Value> = calls.iter().map(|c| c.json()).collect();
    assert_eq!(events[0]["event"], "application.created", "{events:?}");
    assert_eq!(events[1]["event"], "deployment.deferred", "{events:?}");
    assert_eq!(events[1]["status"], "deferred");
    assert!(events[1]["message"].as_str().is_some_and(|m| m.contains("outside the change window")), "{events:?}");

    // A restart re-runs the reconcile; nothing is sent again.
    f.operator.kill();
    f.operator = Operator::start(&f.ns.name, ALLOW_LOOPBACK).await;
    f.request_reconcile("shop").await;
    f.wait_app("shop", "reconciled after the restart", |a| {
        a.status.as_ref().and_then(|s| s.last_handled_reconcile_at.as_ref()).is_some()
    })
    .await;

    f.apps().delete("shop", &Default::default()).await.expect("delete");
    let calls = wait_requests(&receiver, "/life", 3).await;
    assert_eq!(calls[2].json()["event"], "application.deleted");
    assert_eq!(calls[2].json()["app"], "shop");
    // Give a duplicate every chance to show up, then count.
    let hook = wait_hook(&f, "lifecycle", "three deliveries", |d| {
        d.iter().filter(|d| d.result.as_str() == "succeeded").count() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events: Vec<String> = receiver
        .requests_to("/life")
        .iter()
        .map(|c| c.json()["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(events, ["application.created", "deployment.deferred", "application.deleted"], "each once");
    let ids: std::collections::BTreeSet<_> =
        hook.status.expect("status").deliveries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), 3);
}

/// With `--concurrency 1`, an application whose BeforeDeployment gate waits (for up to 10
/// minutes) and one waiting for a 45 s rollout hold no work slot: a third deploys meanwhile.
#[tokio::test]
async fn a_waiting_gate_and_a_slow_rollout_do_not_hold_up_a_third_application() {
    let config = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata: {{a: b}}\n");
    let files = [
        ("gated/config.yaml", config("gated")),
        ("slow/app.yaml", SLOW_ROLLOUT.to_owned()),
        ("quick/config.yaml", config("quick")),
    ];
    let flags = [ALLOW_LOOPBACK, &["--concurrency", "1"]].concat();
    let Some(f) = Fixture::start("owh-slots", &files, &flags).await else { return };
    let receiver = Receiver::start().await;
    // An approval that stays RUNNING: the gate waits until its 10-minute timeout.
    receiver.script("POST", "/approve", vec![Reply::status(202).header("location", "/approve/1")]);
    receiver.script("GET", "/approve/1", vec![Reply::json(200, json!({"state": "RUNNING"}))]);
    create_hook(
        &f,
        "approval",
        json!({"url": receiver.url("/approve"), "triggers": ["deployment.started"], "gate": "BeforeDeployment",
               "applications": {"matchLabels": {"approval": "required"}},
               "waitForCompletion": {"statusUrlFrom": "LocationHeader", "statusJsonPath": "$.state",
                                     "success": ["APPROVED"], "pollInterval": "1s", "timeout": "10m"}}),
    )
    .await;
    let running = |a: &tugboat::api::GitOpsApplication| {
        a.status.as_ref().and_then(|s| s.deployments.last()).is_some_and(|d| d.result == DeploymentResult::Running)
    };
    // More waiting gates than a reconcile-per-slot design could hold (it allowed 8 per slot).
    let gated_names: Vec<String> = (0..10).map(|i| format!("gated-{i}")).collect();
    for name in &gated_names {
        let gated: tugboat::api::GitOpsApplication = serde_json::from_value(json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
            "metadata": {"name": name, "labels": {"approval": "required"}},
            "spec": f.app_spec(json!({"source": {"path": "gated"}}))
        }))
        .expect("application");
        f.apps().create(&PostParams::default(), &gated).await.expect("create gated");
    }
    for name in &gated_names {
        f.wait_app(name, "waiting at its gate", running).await;
    }
    let asked = || {
        let ids: std::collections::BTreeSet<String> = receiver
            .requests_to("/approve")
            .iter()
            .filter(|r| r.method == "POST")
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect();
        ids.len()
    };
    f.eventually("every gate asked once", || async { (asked() == 10).then_some(()) }).await;
    f.create_app("slow", f.app_spec(json!({"source": {"path": "slow"}, "healthTimeout": "120s"}))).await;
    f.wait_app("slow", "waiting for its rollout", running).await;

    let sha = f.head();
    f.create_app("quick", f.app_spec(json!({"source": {"path": "quick"}}))).await;
    f.wait_app("quick", "Ready=True while the gates and the rollout wait", |a| is_ready_at(a, &sha)).await;
    for name in gated_names.iter().map(String::as_str).chain(["slow"]) {
        let app = f.apps().get(name).await.expect("application");
        assert!(running(&app), "{name} was still waiting: {:?}", app.status.map(|s| s.deployments));
    }
    let gated = f.apps().get("gated-0").await.expect("application");
    let record = gated.status.and_then(|s| s.deployments.last().cloned()).expect("a deployment");
    assert_eq!(record.phase, Some(tugboat::api::DeploymentPhase::AwaitingGates), "{record:?}");
    assert_eq!(record.awaiting.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["approval"]);
    let slow = f.apps().get("slow").await.expect("application");
    let record = slow.status.and_then(|s| s.deployments.last().cloned()).expect("a deployment");
    assert_eq!(record.phase, Some(tugboat::api::DeploymentPhase::RollingOut), "{record:?}");
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(config_maps.get_opt("gated").await.expect("get").is_none(), "nothing of the gated one applied");
}
