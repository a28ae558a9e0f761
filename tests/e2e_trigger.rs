//! End to end: webhook calls redeploy applications with variables, image tags and rolling restarts.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;

use support::fixture::{Fixture, demo_manifests, is_ready_at};
use support::http::post;

fn env_value(d: &Deployment, name: &str) -> Option<String> {
    let containers = &d.spec.as_ref()?.template.spec.as_ref()?.containers;
    containers[0].env.as_ref()?.iter().find(|e| e.name == name)?.value.clone()
}

fn restarted_at(template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> Option<String> {
    template?.metadata.as_ref()?.annotations.as_ref()?.get("kubectl.kubernetes.io/restartedAt").cloned()
}

#[tokio::test]
async fn a_call_with_a_variable_redeploys_with_it_and_later_polls_keep_it() {
    let Some(f) = Fixture::start("vars", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    let port = f.operator.trigger_port;

    // An undeclared variable is refused and changes nothing.
    let refused = post(port, &format!("{path}?NOT_DECLARED=x"), &[], b"").await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.body.contains("NOT_DECLARED") && refused.body.contains("SERVICE_TAG"),
        "names the allowed ones: {}",
        refused.body
    );
    let app = f.apps().get("shop").await.expect("app");
    assert!(app.annotations().get("tugboat.dev/trigger").is_none(), "a refused call records nothing");

    // Portainer-style call: POST with the variable in the query and an empty body.
    let accepted = post(port, &format!("{path}?SERVICE_TAG=development"), &[], b"").await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let trigger_id = accepted.json()["triggerId"].as_str().expect("triggerId").to_owned();
    assert_eq!(accepted.json()["applications"], json!(["shop"]));
    let sequence = accepted.json()["sequences"]["shop"].as_i64().expect("sequences.shop");

    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    f.eventually("env var SERVICE_TAG=development in the live Deployment", || async {
        let d = deployments.get("web").await.ok()?;
        (env_value(&d, "SERVICE_TAG").as_deref() == Some("development")).then_some(())
    })
    .await;
    let d = deployments.get("web").await.expect("web");
    let image = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|p| p.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("registry.example.com/web:development"), "every placeholder follows");
    let cm = config_maps.get("web-config").await.expect("cm");
    assert_eq!(cm.data.expect("data").get("tag").map(String::as_str), Some("development"));
    let webhooks: Api<tugboat::api::Webhook> = Api::namespaced(f.client.clone(), &f.ns.name);
    let webhook = f
        .eventually("Webhook reports its last delivery", || async {
            let w = webhooks.get("deploy").await.ok()?;
            w.status.as_ref()?.last_delivery.as_ref()?;
            Some(w)
        })
        .await;
    let status = webhook.status.expect("status");
    let delivery = status.last_delivery.expect("last delivery");
    assert!([400, 202].contains(&delivery.http_status), "{delivery:?}");
    assert!(status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"), "{:?}", status.conditions);
    let app = f
        .wait_app("shop", "trigger handled", |a| {
            a.status.as_ref().and_then(|s| s.last_trigger.as_ref()).is_some_and(|t| t.id == trigger_id)
        })
        .await;
    let handled_sequence = app.status.as_ref().and_then(|s| s.last_trigger.as_ref()).map(|t| t.sequence);
    assert_eq!(handled_sequence, Some(sequence), "the 202 named the sequence the controller handled");
    assert_eq!(app.status.expect("status").variables.get("SERVICE_TAG").map(String::as_str), Some("development"));

    // A later commit, picked up by a reconcile request (what a poll does), keeps the variable.
    let extra = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  tag: ${SERVICE_TAG:-stable}\n";
    let second = f.commit(&[("deploy/extra.yaml", Some(extra))], "another config map");
    f.request_reconcile("shop").await;
    f.wait_app("shop", "second revision", |a| is_ready_at(a, &second)).await;
    let extra = config_maps.get("extra").await.expect("extra");
    assert_eq!(extra.data.expect("data").get("tag").map(String::as_str), Some("development"));
    let d = deployments.get("web").await.expect("web");
    assert_eq!(env_value(&d, "SERVICE_TAG").as_deref(), Some("development"));
}

fn workloads() -> Vec<(&'static str, String)> {
    let template = |app: &str| {
        format!(
            "    metadata:\n      labels: {{app: {app}}}\n    spec:\n      containers:\n        - name: main\n          image: registry.example.com/{app}:1\n"
        )
    };
    let deployment = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n{}",
            template(name)
        )
    };
    vec![
        ("deploy/a.yaml", deployment("a")),
        ("deploy/b.yaml", deployment("b")),
        (
            "deploy/agent.yaml",
            format!(
                "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {{app: agent}}\n  template:\n{}",
                template("agent")
            ),
        ),
        (
            "deploy/db.yaml",
            format!(
                "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  replicas: 1\n  selector:\n    matchLabels: {{app: db}}\n  template:\n{}",
                template("db")
            ),
        ),
    ]
}

async fn restart_marks(f: &Fixture) -> BTreeMap<String, Option<String>> {
    let ns = &f.ns.name;
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), ns);
    let daemonsets: Api<DaemonSet> = Api::namespaced(f.client.clone(), ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(f.client.clone(), ns);
    let mut marks = BTreeMap::new();
    for name in ["a", "b"] {
        let d = deployments.get(name).await.expect("deployment");
        marks.insert(format!("deployment/{name}"), restarted_at(d.spec.as_ref().map(|s| &s.template)));
    }
    let ds = daemonsets.get("agent").await.expect("daemonset");
    marks.insert("daemonset/agent".into(), restarted_at(ds.spec.as_ref().map(|s| &s.template)));
    let sts = statefulsets.get("db").await.expect("statefulset");
    marks.insert("statefulset/db".into(), restarted_at(sts.spec.as_ref().map(|s| &s.template)));
    marks
}

#[tokio::test]
async fn rollout_restart_restarts_what_it_names_and_nothing_else() {
    let Some(f) = Fixture::start("restart", &workloads(), &[]).await else { return };
    let sha = f.head();
    f.create_app("fleet", f.app_spec(json!({}))).await;
    f.wait_app("fleet", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("restart", json!({"targets": [{"name": "fleet"}]})).await;
    let port = f.operator.trigger_port;
    let handled = |id: String| {
        move |a: &tugboat::api::GitOpsApplication| {
            a.status.as_ref().is_some_and(|s| {
                s.last_trigger.as_ref().is_some_and(|t| t.id == id)
                    && s.deployments.last().is_some_and(|d| {
                        d.result == tugboat::api::DeploymentResult::Succeeded
                            && d.trigger_id.as_deref() == Some(id.as_str())
                    })
            })
        }
    };

    let before = restart_marks(&f).await;
    assert!(before.values().all(Option::is_none));

    let bad = post(port, &format!("{path}?rollout-restart=deployment/nope"), &[], b"").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("deployment/a") && bad.body.contains("statefulset/db"),
        "lists the valid ones: {}",
        bad.body
    );

    // all: every workload restarts and rolls out (the deployment finishes only when healthy).
    let all = post(port, &format!("{path}?rollout-restart=all"), &[], b"").await;
    assert_eq!(all.status, 202, "{all:?}");
    let app = f
        .wait_app("fleet", "restart-all handled", handled(all.json()["triggerId"].as_str().expect("id").to_owned()))
        .await;
    let after_all = restart_marks(&f).await;
    assert!(after_all.values().all(Option::is_some), "all restarted: {after_all:?}");
    let restarted = app.status.expect("status").deployments.last().expect("deployment").restarted.clone();
    assert_eq!(restarted.len(), 4, "{restarted:?}");

    // One name: only that workload.
    tokio::time::sleep(Duration::from_millis(1100)).await; // restartedAt has second precision
    let one = post(port, &format!("{path}?rollout-restart=deployment/a"), &[], b"").await;
    assert_eq!(one.status, 202);
    f.wait_app("fleet", "restart-a handled", handled(one.json()["triggerId"].as_str().expect("id").to_owned())).await;
    let after_one = restart_marks(&f).await;
    assert_ne!(after_one["deployment/a"], after_all["deployment/a"], "a restarted again");
    for other in ["deployment/b", "daemonset/agent", "statefulset/db"] {
        assert_eq!(after_one[other], after_all[other], "{other} not restarted");
    }

    // No parameter: a redeploy that restarts nothing whose template did not change, and a
    // later apply keeps the restart annotations (no fight between field managers).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let plain = post(port, &path, &[], b"").await;
    assert_eq!(plain.status, 202);
    f.wait_app("fleet", "plain call handled", handled(plain.json()["triggerId"].as_str().expect("id").to_owned()))
        .await;
    assert_eq!(restart_marks(&f).await, after_one, "nothing restarted, annotations kept");
}

#[tokio::test]
async fn the_endpoint_answers_bad_calls_clearly_and_loses_no_trigger_when_the_operator_dies() {
    let Some(mut f) = Fixture::start("endpoint", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    let port = f.operator.trigger_port;

    let unknown = post(port, "/api/stacks/webhooks/00000000-0000-4000-8000-000000000000", &[], b"").await;
    assert_eq!((unknown.status, unknown.json()), (404, json!({"error": "not found"})));
    let elsewhere = post(port, "/somewhere", &[], b"").await;
    assert_eq!(
        (elsewhere.status, elsewhere.json()),
        (404, json!({"error": "not found"})),
        "same body for any unknown path"
    );
    let get = support::http::request(port, "GET", &path, &[], b"").await;
    assert_eq!(get.status, 405);
    let huge = vec![b'x'; 10 * 1024 * 1024];
    let too_large = post(port, &path, &[], &huge).await;
    assert_eq!(too_large.status, 413, "{:?}", too_large.body);
    let bad_query = post(port, &format!("{path}?rollout-restart=pods/x"), &[], b"").await;
    assert_eq!(bad_query.status, 400);

    // An HTML form post sets variables too.
    let form =
        post(port, &path, &[("Content-Type", "application/x-www-form-urlencoded")], b"SERVICE_TAG=from-form").await;
    assert_eq!(form.status, 202, "{form:?}");
    // Kill the operator right after the 202: the trigger is durable and runs after a restart.
    f.operator.kill();
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    let live = deployments.get("web").await.expect("web");
    let applied_before_crash = env_value(&live, "SERVICE_TAG").as_deref() == Some("from-form");
    f.operator = support::operator::Operator::start(&f.ns.name, &[]).await;
    f.eventually("the recorded trigger is carried out after the restart", || async {
        let d = deployments.get("web").await.ok()?;
        (env_value(&d, "SERVICE_TAG").as_deref() == Some("from-form")).then_some(())
    })
    .await;
    let app = f.apps().get("shop").await.expect("app");
    let id = form.json()["triggerId"].as_str().expect("id").to_owned();
    assert_eq!(
        app.status.and_then(|s| s.last_trigger).map(|t| t.id),
        Some(id),
        "applied before the crash: {applied_before_crash}"
    );

    // A Webhook naming an application that does not exist says so.
    f.create_webhook("orphan", json!({"targets": [{"name": "nope"}]})).await;
    let webhooks: Api<tugboat::api::Webhook> = Api::namespaced(f.client.clone(), &f.ns.name);
    let orphan = f
        .eventually("orphan Webhook reports its missing target", || async {
            let w = webhooks.get("orphan").await.ok()?;
            let ready = w.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
            Some(ready)
        })
        .await;
    assert_eq!((orphan.status.as_str(), orphan.reason.as_str()), ("False", "TargetNotFound"));
    assert!(orphan.message.contains("nope"), "{}", orphan.message);

    // A source calling faster than the per-source limit (50/s, bursts of 100) gets 429.
    let port = f.operator.trigger_port;
    let mut statuses = Vec::new();
    for _ in 0..150 {
        statuses.push(post(port, "/hooks/unknown", &[], b"").await.status);
    }
    assert!(statuses.contains(&429), "rate limited: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 404 || *s == 429), "{statuses:?}");
}

/// Sends `call` until it answers 429 (at most 100 times); returns every status it got.
async fn until_rate_limited<F, Fut>(mut call: F) -> Vec<u16>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let mut statuses = Vec::new();
    while statuses.last() != Some(&429) && statuses.len() < 100 {
        statuses.push(call().await);
    }
    assert_eq!(statuses.last(), Some(&429), "never rate limited: {statuses:?}");
    statuses
}

/// A flood of unknown paths is limited in a budget of its own: the flooding client's real
/// delivery right after it is still accepted. Behind a trusted proxy (here the test itself,
/// on 127.0.0.1) each client named by the proxy has its own budget per Webhook, and a forged
/// address left of the proxy's entry does not get the flooder a new one.
#[tokio::test]
async fn a_flood_of_unknown_paths_never_rate_limits_a_real_delivery() {
    // 1 call/s, bursts of 2: a second of refill is far longer than the calls below take.
    let flags = ["--rate-limit-per-source", "1", "--trusted-proxies", "127.0.0.0/8"];
    let Some(f) = Fixture::start("flood", &demo_manifests(), &flags).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    f.create_secret("hook-token", &[("token", "flood-token")]).await;
    let spec = json!({"provider": "generic", "secretRef": {"name": "hook-token"}, "targets": [{"name": "shop"}]});
    let path = f.create_webhook("deploy", spec).await;
    let port = f.operator.trigger_port;
    let token = ("Authorization", "Bearer flood-token");
    // Until the endpoint knows the Webhook, asked for by a client of its own (so the flooding
    // client's budgets stay whole).
    f.eventually("the endpoint knows the Webhook", || async {
        let reply = post(port, &path, &[("X-Forwarded-For", "192.0.2.200")], b"").await;
        (reply.status == 401).then_some(())
    })
    .await;

    let unknown = until_rate_limited(|| async { post(port, "/hooks/unknown", &[], b"").await.status }).await;
    assert!(unknown.iter().all(|s| *s == 404 || *s == 429), "{unknown:?}");
    let delivery = post(port, &format!("{path}?SERVICE_TAG=after-flood"), &[token], b"").await;
    assert_eq!(delivery.status, 202, "the flooding client's own delivery is not limited: {delivery:?}");

    // One client behind the proxy floods the Webhook itself (without the token) ...
    let flooder = [("X-Forwarded-For", "198.51.100.66, 203.0.113.9"), ("Authorization", "Bearer guessed")];
    let flood = until_rate_limited(|| async { post(port, &path, &flooder, b"").await.status }).await;
    assert!(flood.iter().all(|s| *s == 401 || *s == 429), "{flood:?}");
    // ... and stays limited however it names itself, even with the token ...
    let forged = post(port, &path, &[("X-Forwarded-For", "192.0.2.99, 203.0.113.9"), token], b"").await;
    assert_eq!(forged.status, 429, "an address left of the proxy's entry is not read: {forged:?}");
    let forwarded = post(port, &path, &[("Forwarded", "for=203.0.113.9"), token], b"").await;
    assert_eq!(forwarded.status, 429, "the same client in Forwarded: {forwarded:?}");
    // ... while another client's delivery through the same proxy is accepted.
    let other =
        post(port, &format!("{path}?SERVICE_TAG=other-client"), &[("X-Forwarded-For", "192.0.2.10"), token], b"").await;
    assert_eq!(other.status, 202, "another client behind the proxy: {other:?}");
}

#[tokio::test]
async fn concurrent_calls_on_one_application_are_all_recorded_and_carried_out() {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    use std::sync::{Arc, Mutex};
    use support::triggers::{Accepted, Handled, carried_out};

    let Some(f) = Fixture::start("burst", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("burst", json!({"targets": [{"name": "shop"}]})).await;
    let port = f.operator.trigger_port;

    // Every trigger the controller handles shows in status.lastTrigger; a watch started
    // before the calls sees each of them.
    let handled: Arc<Mutex<Handled>> = Arc::default();
    let seen = handled.clone();
    let watch = tokio::spawn(
        watcher(f.apps(), watcher::Config::default().fields("metadata.name=shop")).applied_objects().for_each(
            move |app| {
                if let Some(trigger) = app.ok().and_then(|a| a.status).and_then(|s| s.last_trigger) {
                    seen.lock().unwrap().insert(trigger.sequence, trigger);
                }
                async {}
            },
        ),
    );

    let calls = (0..64).map(|i| {
        let target = format!("{path}?SERVICE_TAG=burst-{i}");
        async move { post(port, &target, &[], b"").await }
    });
    let replies = futures::future::join_all(calls).await;
    let mut accepted = Vec::new();
    for reply in &replies {
        assert_eq!(reply.status, 202, "every concurrent call is recorded: {reply:?}");
        accepted.push(Accepted::from_reply(&reply.json(), "shop").expect("triggerId and sequences.shop"));
    }
    let ids: std::collections::BTreeSet<_> = accepted.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), 64, "one id per call");

    let last = accepted.iter().map(|a| a.sequence).max();
    f.eventually("the record holding the last accepted call is handled", || async {
        (handled.lock().unwrap().keys().next_back().copied() >= last).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let the watch deliver the last change
    watch.abort();
    let per_record = carried_out(&accepted, &handled.lock().unwrap())
        .unwrap_or_else(|problem| panic!("every accepted call is carried out exactly once: {problem}"));
    let app = f.apps().get("shop").await.expect("app");
    let status = app.status.expect("status");
    let tag = status.variables.get("SERVICE_TAG").cloned().unwrap_or_default();
    assert!(tag.starts_with("burst-"), "the variables of a handled call are live: {tag}");
    let runs = per_record.len();
    assert!(runs < 64, "concurrent calls coalesce into fewer handled triggers, got {runs}");
    eprintln!("64 concurrent calls were carried out by {runs} handled triggers: {per_record:?}");
}

/// A generic Webhook with a `secretRef` wants the token too: the URL alone deploys nothing.
#[tokio::test]
async fn a_generic_webhook_with_a_secret_wants_its_bearer_token() {
    let Some(f) = Fixture::start("generic-token", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    f.create_secret("hook-token", &[("token", "s3cret-hook-token")]).await;
    let path = f
        .create_webhook(
            "deploy",
            json!({"provider": "generic", "secretRef": {"name": "hook-token"}, "targets": [{"name": "shop"}]}),
        )
        .await;
    let port = f.operator.trigger_port;
    let target = format!("{path}?SERVICE_TAG=with-token");
    let without = post(port, &target, &[], b"").await;
    assert_eq!(without.status, 401, "{without:?}");
    assert!(without.body.contains("Authorization"), "{}", without.body);
    let wrong = post(port, &target, &[("Authorization", "Bearer guessed")], b"").await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(!wrong.body.contains("s3cret-hook-token"), "never says the expected value");
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert_eq!(env_value(&deployments.get("web").await.expect("web"), "SERVICE_TAG").as_deref(), Some("stable"));

    let accepted = post(port, &target, &[("Authorization", "Bearer s3cret-hook-token")], b"").await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    f.eventually("the call's variable applied", || async {
        let web = deployments.get("web").await.ok()?;
        (env_value(&web, "SERVICE_TAG").as_deref() == Some("with-token")).then_some(())
    })
    .await;
}

/// A Webhook's path is derived from its uid with the operator's key: someone who can write
/// `webhooks/status` and sets a path of their choosing (a guessable one) gets no Webhook
/// behind it, and the operator puts the real path back. (Before, the path written into the
/// status was served and kept.)
#[tokio::test]
async fn a_path_written_into_a_webhooks_status_is_never_served() {
    let Some(f) = Fixture::start("forged-path", &demo_manifests(), &["--rate-limit-per-source", "0"]).await else {
        return;
    };
    let head = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &head)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    let real = post(f.operator.trigger_port, &path, &[], b"").await;
    assert_eq!(real.status, 202, "{real:?}");

    let forged = "/api/stacks/webhooks/00000000-0000-4000-8000-000000000000";
    let webhooks: Api<tugboat::api::Webhook> = Api::namespaced(f.client.clone(), &f.ns.name);
    let patch = json!({"status": {"webhookPath": forged}});
    webhooks
        .patch_status("deploy", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("write the status as a status writer could");
    // For a while (the operator's cache sees the forged status, its controller rewrites it),
    // the forged path must never reach the Webhook.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        let reply = post(f.operator.trigger_port, forged, &[], b"").await;
        assert_eq!(reply.status, 404, "a forged path is served: {reply:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restored = f
        .eventually("the real path back in the status", || async {
            let status = webhooks.get("deploy").await.ok()?.status?;
            (status.webhook_path.as_deref() == Some(path.as_str())).then_some(())
        })
        .await;
    let () = restored;
    let again = post(f.operator.trigger_port, &path, &[], b"").await;
    assert_eq!(again.status, 202, "the real path still works: {again:?}");
}
