//! End to end: change windows hold triggers back and run them when the window opens, across an operator restart.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use support::fixture::{Fixture, demo_manifests, is_ready_at};
use support::http::post;

fn service_tag(d: &Deployment) -> Option<String> {
    let env = d.spec.as_ref()?.template.spec.as_ref()?.containers.first()?.env.clone()?;
    env.into_iter().find(|e| e.name == "SERVICE_TAG")?.value
}

/// Waits until the current minute is at least `from` and below `to` seconds.
async fn wait_for_second(from: i8, to: i8) {
    loop {
        let second = jiff::Zoned::now().second();
        if (from..to).contains(&second) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_trigger_outside_the_window_is_held_and_runs_when_it_opens_even_after_a_restart() {
    let Some(mut f) = Fixture::start("windows", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    // Open during the first 20 seconds of every minute.
    let window = json!({"spec": {"changeWindows": [{"kind": "allow", "schedule": "* * * * *", "duration": "20s", "timeZone": "Europe/Berlin"}]}});
    f.apps().patch("shop", &PatchParams::default(), &Patch::Merge(&window)).await.expect("add window");
    let strict = f.create_webhook("strict", json!({"targets": [{"name": "shop"}]})).await;
    let forcing =
        f.create_webhook("forcing", json!({"targets": [{"name": "shop"}], "allowWindowOverride": true})).await;
    let port = f.operator.trigger_port;
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);

    wait_for_second(22, 35).await;
    // A Webhook that allows it may force the window.
    let forced = post(port, &format!("{forcing}?SERVICE_TAG=forced&override-window=true"), &[], b"").await;
    assert_eq!(forced.status, 202, "{forced:?}");
    assert!(forced.json().get("deferredUntil").is_none(), "{forced:?}");
    f.eventually("forced variable applied outside the window", || async {
        (service_tag(&deployments.get("web").await.ok()?).as_deref() == Some("forced")).then_some(())
    })
    .await;
    // Asking to override through a Webhook that does not allow it changes nothing.
    let held = post(port, &format!("{strict}?SERVICE_TAG=held&override-window=true"), &[], b"").await;
    assert_eq!(held.status, 202, "{held:?}");
    let until = held.json()["deferredUntil"].as_str().expect("deferredUntil").to_owned();
    let until: jiff::Timestamp = until.parse().expect("timestamp");
    assert_eq!(until.as_second() % 60, 0, "the window opens at the start of a minute: {until}");

    let app = f
        .wait_app("shop", "Deferred with nextWindowStart", |a| {
            a.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| c.type_ == "Deferred" && c.status == "True")
                    && s.pending_trigger.as_ref().and_then(|t| t.next_window_start.as_ref()).is_some()
            })
        })
        .await;
    let next = app.status.and_then(|s| s.pending_trigger).and_then(|t| t.next_window_start).expect("next start");
    assert_eq!(next.0, until, "status and answer agree");
    assert_eq!(
        service_tag(&deployments.get("web").await.expect("web")).as_deref(),
        Some("forced"),
        "nothing applied while held"
    );

    // The operator restarts while the trigger is held; the trigger is recorded in the API server.
    f.operator.kill();
    f.operator = support::operator::Operator::start(&f.ns.name, &[]).await;
    f.eventually("the held trigger runs once the window opens", || async {
        (service_tag(&deployments.get("web").await.ok()?).as_deref() == Some("held")).then_some(())
    })
    .await;
    let ran_at = jiff::Timestamp::now();
    assert!(ran_at >= until, "ran at {ran_at}, not before the window opened at {until}");
    let app = f
        .wait_app("shop", "Deferred cleared", |a| {
            a.status
                .as_ref()
                .is_some_and(|s| !s.conditions.iter().any(|c| c.type_ == "Deferred") && s.pending_trigger.is_none())
        })
        .await;
    assert_eq!(app.status.expect("status").variables.get("SERVICE_TAG").map(String::as_str), Some("held"));
}

#[tokio::test]
async fn a_trigger_held_by_a_window_that_never_opens_says_it_is_held_without_a_time() {
    let Some(f) = Fixture::start("windows-never", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    // Denied every minute of every day: no opening within the search horizon.
    let window = json!({"spec": {"changeWindows": [{"kind": "deny", "schedule": "* * * * *", "duration": "1m", "timeZone": "UTC"}]}});
    f.apps().patch("shop", &PatchParams::default(), &Patch::Merge(&window)).await.expect("add window");
    let hook = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;

    let held = post(f.operator.trigger_port, &format!("{hook}?SERVICE_TAG=never"), &[], b"").await;
    assert_eq!(held.status, 202, "{held:?}");
    let body = held.json();
    assert_eq!(body["deferred"], json!(true), "a held trigger says so: {body}");
    assert!(body.get("deferredUntil").is_none(), "no opening is known: {body}");

    let app = f
        .wait_app("shop", "Deferred with no known opening", |a| {
            a.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| c.type_ == "Deferred" && c.message.contains("no opening within"))
                    && s.pending_trigger.as_ref().is_some_and(|t| t.next_window_start.is_none())
            })
        })
        .await;
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    let web = deployments.get("web").await.expect("web");
    assert_eq!(service_tag(&web).as_deref(), Some("stable"), "nothing applied while held");
    assert_eq!(app.status.expect("status").pending_trigger.expect("pending").variables["SERVICE_TAG"], "never");
}
