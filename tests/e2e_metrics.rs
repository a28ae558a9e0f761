//! End to end: `/metrics` on the probe port counts reconciles, deployments and trigger calls.

mod support;

use serde_json::json;

use support::fixture::{Fixture, demo_manifests, is_ready_at};
use support::http::{post, request};

/// The value of one sample line (`name{labels} value`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn scrape(port: u16) -> String {
    let reply = request(port, "GET", "/metrics", &[], b"").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

#[tokio::test]
async fn metrics_count_deployments_and_trigger_calls() {
    let Some(f) = Fixture::start("metrics", &demo_manifests(), &[]).await else { return };
    let before = scrape(f.operator.probe_port).await;
    assert!(before.contains("# HELP tugboat_deployments "), "documented metrics: {before}");
    assert_eq!(sample(&before, "tugboat_deployments_total{result=\"succeeded\"}"), Some(0.0), "{before}");

    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    let app = f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let (_, _, message) = support::fixture::ready(&app).expect("Ready");
    assert!(message.starts_with("Applied revision main@sha1:"), "the condition reads as a sentence: {message}");
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    let port = f.operator.trigger_port;
    let accepted = post(port, &format!("{path}?SERVICE_TAG=development"), &[], b"").await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let refused = post(port, &format!("{path}?UNKNOWN=1"), &[], b"").await;
    assert_eq!(refused.status, 400, "{refused:?}");
    let missing = post(port, "/api/stacks/webhooks/00000000-0000-4000-8000-000000000000", &[], b"").await;
    assert_eq!(missing.status, 404, "{missing:?}");
    let trigger_id = accepted.json()["triggerId"].as_str().expect("triggerId").to_owned();
    f.wait_app("shop", "the trigger's deployment finished", |a| {
        let Some(status) = a.status.as_ref() else { return false };
        status
            .deployments
            .last()
            .is_some_and(|d| d.trigger_id.as_deref() == Some(trigger_id.as_str()) && d.finished_at.is_some())
    })
    .await;

    let text = f
        .eventually("two successful deployments counted", || async {
            let text = scrape(f.operator.probe_port).await;
            (sample(&text, "tugboat_deployments_total{result=\"succeeded\"}")? >= 2.0).then_some(text)
        })
        .await;
    assert_eq!(sample(&text, "tugboat_triggers_total{provider=\"generic\",code=\"202\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "tugboat_triggers_total{provider=\"generic\",code=\"400\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "tugboat_triggers_total{provider=\"unknown\",code=\"404\"}"), Some(1.0), "{text}");
    let reconciles = sample(&text, "tugboat_reconciles_total{result=\"success\"}").unwrap_or(0.0);
    assert!(reconciles >= 2.0, "at least one reconcile per deployment: {text}");
    let timed = sample(&text, "tugboat_reconcile_duration_seconds_count{result=\"success\"}").unwrap_or(0.0);
    assert!(timed >= reconciles, "every reconcile is timed: {text}");
    assert_eq!(sample(&text, "tugboat_deferred_triggers"), Some(0.0), "{text}");
    assert!(sample(&text, "tugboat_queued_triggers").is_some(), "{text}");
    assert!(sample(&text, "tugboat_reconciles_in_flight").is_some(), "{text}");
}
