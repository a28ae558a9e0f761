//! High availability: two replicas of the real binary share one Lease. The leader deploys,
//! both serve the trigger endpoint; when the leader is killed the follower takes over, and
//! no trigger is lost and no deployment is done twice.
//!
//! The long variant (several leaders killed in turn under webhook calls) is
//! `cargo test --test ha -- --ignored`.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;
use tugboat::api::GitOpsApplication;

use support::cluster::eventually;
use support::fixture::{Fixture, demo_manifests, is_ready_at};
use support::http::{Reply, post};
use support::operator::Operator;

/// Generous bound on a takeover (the design gives about 12 s); not a timed assertion.
const TAKEOVER_WAIT: Duration = Duration::from_secs(60);

async fn holder(f: &Fixture) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(f.client.clone(), &f.ns.name);
    leases.get_opt("tugboat").await.ok()??.spec?.holder_identity
}

async fn wait_holder(f: &Fixture, name: &str) {
    eventually(&format!("Lease held by {name}"), TAKEOVER_WAIT, || async {
        (holder(f).await.as_deref() == Some(name)).then_some(())
    })
    .await;
}

/// Posts until the replica's Webhook cache knows the path (404 records nothing), then returns the answer.
async fn call(port: u16, target: &str) -> Reply {
    eventually("the endpoint knows the webhook path", Duration::from_secs(30), || async {
        let reply = post(port, target, &[], b"").await;
        (reply.status != 404).then_some(reply)
    })
    .await
}

fn env_value(d: &Deployment, name: &str) -> Option<String> {
    let containers = &d.spec.as_ref()?.template.spec.as_ref()?.containers;
    containers.first()?.env.as_ref()?.iter().find(|e| e.name == name)?.value.clone()
}

/// Every trigger id a deployment carried out, with how many deployments carried it.
fn deployments_per_trigger(app: &GitOpsApplication) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for d in &app.status.as_ref().expect("status").deployments {
        *count.entry(d.trigger_id.clone().unwrap_or_else(|| format!("revision {}", d.revision))).or_default() += 1;
    }
    count
}

async fn started_events(f: &Fixture, app: &str) -> usize {
    let events: Api<Event> = Api::namespaced(f.client.clone(), &f.ns.name);
    let list = events.list(&ListParams::default()).await.expect("events");
    list.items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("DeploymentStarted"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(app))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count.max(1) as usize))
        .sum()
}

#[tokio::test]
async fn killing_the_leader_hands_over_without_losing_or_repeating_work() {
    let Some(mut f) = Fixture::start("ha", &demo_manifests(), &[]).await else { return };
    let leader = f.operator.name.clone();
    wait_holder(&f, &leader).await;
    let follower = Operator::start_named(&f.ns.name, "tugboat-follower", &[]).await;
    eventually("the second replica follows", Duration::from_secs(30), || async {
        follower.log_text().contains("following the leader").then_some(())
    })
    .await;
    assert_eq!(holder(&f).await.as_deref(), Some(leader.as_str()), "the first replica keeps leading");

    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;

    // The follower's endpoint records triggers; the leader carries them out.
    let first = call(follower.trigger_port, &format!("{path}?SERVICE_TAG=one")).await;
    assert_eq!(first.status, 202, "{first:?}");
    let first_id = first.json()["triggerId"].as_str().expect("triggerId").to_owned();
    f.wait_app("shop", "the follower's trigger carried out by the leader", |a| {
        a.status.as_ref().and_then(|s| s.last_trigger.as_ref()).is_some_and(|t| t.id == first_id)
            && a.status.as_ref().and_then(|s| s.deployments.last()).is_some_and(|d| d.finished_at.is_some())
    })
    .await;
    assert!(!follower.log_text().contains("became the leader"), "the follower never led");

    // Kill the leader, and call the follower while nobody leads.
    let killed = Instant::now();
    f.operator.kill();
    let during = call(follower.trigger_port, &format!("{path}?SERVICE_TAG=two")).await;
    assert_eq!(during.status, 202, "a trigger during the takeover is accepted: {during:?}");
    let during_id = during.json()["triggerId"].as_str().expect("triggerId").to_owned();
    wait_holder(&f, "tugboat-follower").await;
    eprintln!("takeover: the follower held the Lease {:?} after the leader was killed", killed.elapsed());

    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    f.eventually("SERVICE_TAG=two live after the takeover", || async {
        let d = deployments.get("web").await.ok()?;
        (env_value(&d, "SERVICE_TAG").as_deref() == Some("two")).then_some(())
    })
    .await;
    let app = f
        .wait_app("shop", "the trigger sent during the takeover carried out", |a| {
            a.status.as_ref().and_then(|s| s.last_trigger.as_ref()).is_some_and(|t| t.id == during_id)
                && a.status.as_ref().and_then(|s| s.deployments.last()).is_some_and(|d| d.finished_at.is_some())
        })
        .await;

    let per_trigger = deployments_per_trigger(&app);
    assert_eq!(per_trigger.get(&first_id), Some(&1), "{per_trigger:?}");
    assert_eq!(per_trigger.get(&during_id), Some(&1), "{per_trigger:?}");
    assert!(per_trigger.values().all(|n| *n == 1), "no deployment twice: {per_trigger:?}");
    let recorded = app.status.as_ref().expect("status").deployments.len();
    assert_eq!(recorded, 3, "initial, first call, call during the takeover: {per_trigger:?}");
    let started = eventually("DeploymentStarted events", Duration::from_secs(10), || async {
        let n = started_events(&f, "shop").await;
        (n >= recorded).then_some(n)
    })
    .await;
    assert_eq!(started, recorded, "one DeploymentStarted event per recorded deployment");
    let leases: Api<Lease> = Api::namespaced(f.client.clone(), &f.ns.name);
    let lease = leases.get("tugboat").await.expect("lease");
    assert!(lease.spec.and_then(|s| s.lease_transitions).unwrap_or(0) >= 1, "the takeover counts as a transition");
}

#[tokio::test]
async fn a_stopped_leader_hands_the_lease_over_at_once() {
    let Some(f) = Fixture::start("ha-release", &demo_manifests(), &[]).await else { return };
    let first = f.operator.name.clone();
    wait_holder(&f, &first).await;
    let second = Operator::start_named(&f.ns.name, "tugboat-second", &[]).await;
    // SIGTERM: the leader finishes, then marks the Lease free; the follower takes it without
    // waiting for it to expire (the log says it was released).
    let pid = f.operator.pid().to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(status.success());
    wait_holder(&f, "tugboat-second").await;
    assert!(f.operator.log_text().contains("released the leader lease"), "{}", f.operator.log_text());
    drop(second);
}

/// Long variant: the leader is killed three times in a row while calls keep arriving on the
/// surviving replicas; every accepted call is carried out.
#[tokio::test]
#[ignore = "long: run with `cargo test --test ha -- --ignored`"]
async fn leaders_killed_in_turn_under_calls_lose_nothing() {
    let Some(mut f) = Fixture::start("ha-long", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    let mut spare = Operator::start_named(&f.ns.name, "tugboat-spare-0", &[]).await;
    let mut last_id = String::new();
    for round in 1..=3 {
        let leader = holder(&f).await.expect("a holder");
        // Kill whichever replica leads; the other one answers the call meanwhile.
        let (killed, survivor_port) = if leader == f.operator.name {
            f.operator.kill();
            ("fixture", spare.trigger_port)
        } else {
            spare.kill();
            ("spare", f.operator.trigger_port)
        };
        let reply = call(survivor_port, &format!("{path}?SERVICE_TAG=round{round}")).await;
        assert_eq!(reply.status, 202, "{reply:?}");
        last_id = reply.json()["triggerId"].as_str().expect("triggerId").to_owned();
        let id = last_id.clone();
        f.wait_app("shop", "the call carried out", |a| {
            a.status.as_ref().and_then(|s| s.last_trigger.as_ref()).is_some_and(|t| t.id == id)
                && a.status.as_ref().and_then(|s| s.deployments.last()).is_some_and(|d| d.finished_at.is_some())
        })
        .await;
        // Bring the killed replica back as a new follower.
        if killed == "fixture" {
            f.operator = Operator::start_named(&f.ns.name, &format!("tugboat-fixture-{round}"), &[]).await;
        } else {
            spare = Operator::start_named(&f.ns.name, &format!("tugboat-spare-{round}"), &[]).await;
        }
    }
    let app = f.apps().get("shop").await.expect("app");
    let per_trigger = deployments_per_trigger(&app);
    assert!(per_trigger.values().all(|n| *n == 1), "no deployment twice: {per_trigger:?}");
    assert_eq!(per_trigger.get(&last_id), Some(&1));
}
