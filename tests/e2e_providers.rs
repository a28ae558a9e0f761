//! End to end: Git and registry providers call the endpoint with their real payload formats and signatures.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::{Value, json};
use tugboat::trigger::signature::{hmac_sha256_hex, standard_signature};

use support::fixture::{Fixture, demo_manifests, is_ready_at};
use support::http::{Reply, post};

const SECRET: &str = "s3cret-for-hooks";

fn payload(name: &str) -> Value {
    let path = format!("{}/tests/payloads/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).expect("payload fixture")).expect("payload JSON")
}

fn set(value: &mut Value, pointer: &str, new: Value) {
    *value.pointer_mut(pointer).unwrap_or_else(|| panic!("fixture has {pointer}")) = new;
}

fn trigger_annotation(app: &tugboat::api::GitOpsApplication) -> Option<String> {
    app.annotations().get("tugboat.dev/trigger").cloned()
}

struct Hooks<'a> {
    f: &'a Fixture,
    port: u16,
}

impl Hooks<'_> {
    async fn send(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let body = serde_json::to_vec(body).expect("body");
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        post(self.port, path, &all, &body).await
    }

    async fn github(&self, path: &str, event: &str, body: &Value, secret: &str) -> Reply {
        self.github_with(path, event, body, secret, &[]).await
    }

    /// A signed GitHub call with more headers (`X-GitHub-Delivery`, say).
    async fn github_with(&self, path: &str, event: &str, body: &Value, secret: &str, extra: &[(&str, &str)]) -> Reply {
        let bytes = serde_json::to_vec(body).expect("body");
        let signature = format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &bytes));
        let mut headers =
            vec![("Content-Type", "application/json"), ("X-GitHub-Event", event), ("X-Hub-Signature-256", &signature)];
        headers.extend_from_slice(extra);
        post(self.port, path, &headers, &bytes).await
    }

    async fn annotation(&self) -> Option<String> {
        trigger_annotation(&self.f.apps().get("shop").await.expect("app"))
    }
}

#[tokio::test]
async fn providers_trigger_redeploys_with_their_real_payloads_and_signatures() {
    let Some(f) = Fixture::start("providers", &demo_manifests(), &[]).await else { return };
    let first = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &first)).await;
    f.create_secret("hooks", &[("token", SECRET)]).await;
    let secret_ref = json!({"name": "hooks"});
    let target = json!([{"name": "shop"}]);
    let hooks = Hooks { f: &f, port: f.operator.trigger_port };
    let url = f.url();

    // GitHub: a signed push for the application's branch redeploys the new commit.
    let github =
        f.create_webhook("github", json!({"provider": "github", "secretRef": secret_ref, "targets": target})).await;
    let second = f.commit(
        &[("deploy/extra.yaml", Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata: {a: b}\n"))],
        "second",
    );
    let mut push = payload("github_push.json");
    set(&mut push, "/repository/clone_url", json!(url));
    set(&mut push, "/after", json!(second));
    let accepted = hooks.github(&github, "push", &push, SECRET).await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    f.wait_app("shop", "the pushed commit deployed", |a| is_ready_at(a, &second)).await;

    // Another branch: 200 ignored; a ping: 200 ignored; a wrong signature: 401 and nothing recorded.
    let before = hooks.annotation().await;
    set(&mut push, "/ref", json!("refs/heads/feature"));
    let other = hooks.github(&github, "push", &push, SECRET).await;
    assert_eq!(other.status, 200, "{other:?}");
    assert!(other.json()["ignored"].as_str().is_some_and(|r| r.contains("feature")), "{other:?}");
    let ping = hooks.github(&github, "ping", &payload("github_ping.json"), SECRET).await;
    assert_eq!((ping.status, ping.json()), (200, json!({"ignored": "ping"})));
    set(&mut push, "/ref", json!("refs/heads/main"));
    let forged = hooks.github(&github, "push", &push, "not-the-secret").await;
    assert_eq!(forged.status, 401, "{forged:?}");
    let unsigned = hooks.send(&github, &[("X-GitHub-Event", "push")], &push).await;
    assert_eq!(unsigned.status, 401);
    // A verified sender with a malformed body: 400.
    let garbage = b"{not json";
    let signature = format!("sha256={}", hmac_sha256_hex(SECRET.as_bytes(), garbage));
    let malformed =
        post(hooks.port, &github, &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &signature)], garbage).await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert_eq!(hooks.annotation().await, before, "refused and ignored calls record nothing");

    // GitLab: the token header.
    let gitlab =
        f.create_webhook("gitlab", json!({"provider": "gitlab", "secretRef": secret_ref, "targets": target})).await;
    let mut push = payload("gitlab_push.json");
    set(&mut push, "/project/git_http_url", json!(url));
    set(&mut push, "/ref", json!("refs/heads/main"));
    let wrong = hooks.send(&gitlab, &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "wrong")], &push).await;
    assert_eq!(wrong.status, 401);
    let ok = hooks.send(&gitlab, &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", SECRET)], &push).await;
    assert_eq!(ok.status, 202, "{ok:?}");

    // Gitea: HMAC in X-Gitea-Signature.
    let gitea =
        f.create_webhook("gitea", json!({"provider": "gitea", "secretRef": secret_ref, "targets": target})).await;
    let mut push = payload("gitea_push.json");
    set(&mut push, "/repository/clone_url", json!(url));
    set(&mut push, "/ref", json!("refs/heads/main"));
    let bytes = serde_json::to_vec(&push).expect("body");
    let signature = hmac_sha256_hex(SECRET.as_bytes(), &bytes);
    let ok = post(hooks.port, &gitea, &[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &signature)], &bytes).await;
    assert_eq!(ok.status, 202, "{ok:?}");
    let bad =
        post(hooks.port, &gitea, &[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &"0".repeat(64))], &bytes).await;
    assert_eq!(bad.status, 401);

    // Bitbucket Cloud: repo:push with X-Hub-Signature.
    let bitbucket = f
        .create_webhook("bitbucket", json!({"provider": "bitbucket", "secretRef": secret_ref, "targets": target}))
        .await;
    let mut push = payload("bitbucket_push.json");
    set(&mut push, "/repository/links/html/href", json!(url.trim_end_matches(".git")));
    set(&mut push, "/repository/full_name", json!("team/app"));
    set(&mut push, "/push/changes/0/new/name", json!("main"));
    let bytes = serde_json::to_vec(&push).expect("body");
    let signature = format!("sha256={}", hmac_sha256_hex(SECRET.as_bytes(), &bytes));
    let ok =
        post(hooks.port, &bitbucket, &[("X-Event-Key", "repo:push"), ("X-Hub-Signature", &signature)], &bytes).await;
    assert_eq!(ok.status, 202, "{ok:?}");

    // Docker Hub: the pushed tag becomes SERVICE_TAG through variablesFromPayload.
    let dockerhub = f
        .create_webhook("dockerhub", json!({"provider": "dockerhub", "targets": target, "variablesFromPayload": {"SERVICE_TAG": "$.push_data.tag"}}))
        .await;
    let mut push = payload("dockerhub_push.json");
    set(&mut push, "/push_data/tag", json!("v2.1.0"));
    let ok = hooks.send(&dockerhub, &[], &push).await;
    assert_eq!(ok.status, 202, "{ok:?}");
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    f.eventually("SERVICE_TAG from the Docker Hub payload", || async {
        let d = deployments.get("web").await.ok()?;
        let env = d.spec?.template.spec?.containers.first()?.env.clone()?;
        env.iter().any(|e| e.name == "SERVICE_TAG" && e.value.as_deref() == Some("v2.1.0")).then_some(())
    })
    .await;

    // Standard Webhooks: signed calls pass once; the same id again is recorded nothing for.
    let standard =
        f.create_webhook("standard", json!({"provider": "standard", "secretRef": secret_ref, "targets": target})).await;
    let body = br#"{"type":"build.finished"}"#;
    let timestamp = jiff::Timestamp::now().as_second();
    let signature = standard_signature(SECRET.as_bytes(), "msg_1", timestamp, body);
    let ts = timestamp.to_string();
    let headers =
        [("webhook-id", "msg_1"), ("webhook-timestamp", ts.as_str()), ("webhook-signature", signature.as_str())];
    let first_call = post(hooks.port, &standard, &headers, body).await;
    assert_eq!(first_call.status, 202, "{first_call:?}");
    let before_replay = hooks.annotation().await;
    let replay = post(hooks.port, &standard, &headers, body).await;
    assert_eq!(replay.status, 200, "a replayed id records nothing: {replay:?}");
    assert_eq!(replay.json()["duplicate"], "msg_1", "{replay:?}");
    assert_eq!(hooks.annotation().await, before_replay, "the replay recorded nothing");
    let stale_ts = (timestamp - 600).to_string();
    let stale_signature = standard_signature(SECRET.as_bytes(), "msg_2", timestamp - 600, body);
    let stale = post(
        hooks.port,
        &standard,
        &[("webhook-id", "msg_2"), ("webhook-timestamp", &stale_ts), ("webhook-signature", &stale_signature)],
        body,
    )
    .await;
    assert_eq!(stale.status, 401, "outside the 5 minute tolerance");

    let app = f
        .wait_app("shop", "every accepted trigger handled", |a| {
            let recorded = trigger_annotation(a).and_then(|t| serde_json::from_str::<Value>(&t).ok());
            let sequence = recorded.and_then(|t| t["sequence"].as_i64()).unwrap_or(0);
            a.status.as_ref().and_then(|s| s.last_trigger.as_ref()).is_some_and(|t| t.sequence == sequence)
                && a.status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .is_some_and(|c| c.status == "True")
        })
        .await;
    assert_eq!(app.status.expect("status").variables.get("SERVICE_TAG").map(String::as_str), Some("v2.1.0"));
}

/// A GitHub signature covers the body only: a captured delivery resent with `?tag=` or a
/// variable in the query would otherwise be accepted as signed. Refused (400, naming the
/// parameter and the field that would allow it), nothing recorded; what a Webhook lists passes.
#[tokio::test]
async fn a_signed_delivery_carries_only_the_query_parameters_its_webhook_lists() {
    let Some(f) = Fixture::start("unsigned-query", &demo_manifests(), &[]).await else { return };
    let head = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &head)).await;
    f.create_secret("hooks", &[("token", SECRET)]).await;
    let hooks = Hooks { f: &f, port: f.operator.trigger_port };
    let strict = f
        .create_webhook(
            "strict",
            json!({"provider": "github", "secretRef": {"name": "hooks"}, "targets": [{"name": "shop"}]}),
        )
        .await;
    let mut push = payload("github_push.json");
    set(&mut push, "/repository/clone_url", json!(f.url()));
    set(&mut push, "/after", json!(head));

    let before = hooks.annotation().await;
    for (query, parameter, field) in [
        ("tag=evil", "tag", "allowQueryParameters"),
        ("rollout-restart=all", "rollout-restart", "allowQueryParameters"),
        ("SERVICE_TAG=evil", "SERVICE_TAG", "allowedVariables"),
    ] {
        let reply = hooks.github(&format!("{strict}?{query}"), "push", &push, SECRET).await;
        assert_eq!(reply.status, 400, "{query}: {reply:?}");
        let error = reply.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(&format!("{parameter:?}")) && error.contains(field), "{query}: {error}");
    }
    assert_eq!(hooks.annotation().await, before, "refused calls record nothing");

    // Listed, the same parameters are accepted from the query.
    let listing = f
        .create_webhook(
            "listing",
            json!({"provider": "github", "secretRef": {"name": "hooks"}, "targets": [{"name": "shop"}],
                   "allowQueryParameters": ["rollout-restart"], "allowedVariables": ["SERVICE_TAG"]}),
        )
        .await;
    let reply = hooks.github(&format!("{listing}?rollout-restart=all&SERVICE_TAG=listed"), "push", &push, SECRET).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let recorded = hooks.annotation().await.expect("a trigger recorded");
    assert!(recorded.contains("listed"), "{recorded}");
}

/// Refuses every update of GitOpsApplications in one namespace while it lives (a
/// ValidatingAdmissionPolicy), so trigger writes fail as in an API server outage.
struct RefuseUpdates {
    client: kube::Client,
    name: String,
}

impl RefuseUpdates {
    async fn start(client: &kube::Client, namespace: &str) -> Self {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let name = format!("tugboat-refuse-{namespace}");
        let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{"apiGroups": ["tugboat.dev"], "apiVersions": ["*"],
                    "operations": ["UPDATE"], "resources": ["gitopsapplications"]}]},
                "validations": [{"expression": "false", "message": "updates refused by the test"}],
            },
        }))
        .expect("policy");
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}},
        }))
        .expect("binding");
        let pp = kube::api::PostParams::default();
        Api::<ValidatingAdmissionPolicy>::all(client.clone()).create(&pp, &policy).await.expect("create policy");
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .create(&pp, &binding)
            .await
            .expect("create binding");
        Self { client: client.clone(), name }
    }

    async fn stop(self) {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let dp = kube::api::DeleteParams::default();
        let _ = Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone()).delete(&self.name, &dp).await;
        let _ = Api::<ValidatingAdmissionPolicy>::all(self.client.clone()).delete(&self.name, &dp).await;
    }
}

/// A delivery is recorded once: a GitHub redelivery (same `X-GitHub-Delivery`) or a Standard
/// Webhooks replay answers 200 and records nothing, also when it reaches another replica; an
/// id is scoped to its Webhook; and an id is remembered only once its trigger is durable, so a
/// sender's retry after a 503 is recorded, not refused.
#[tokio::test]
async fn a_delivery_is_recorded_once_per_webhook_across_replicas_and_retries() {
    let Some(f) = Fixture::start("deliveries", &demo_manifests(), &[]).await else { return };
    let head = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &head)).await;
    f.create_secret("hooks", &[("token", SECRET)]).await;
    let secret_ref = json!({"name": "hooks"});
    let target = json!([{"name": "shop"}]);
    let hooks = Hooks { f: &f, port: f.operator.trigger_port };
    let replica = support::operator::Operator::start_named(&f.ns.name, "tugboat-second-replica", &[]).await;
    let standard =
        f.create_webhook("standard", json!({"provider": "standard", "secretRef": secret_ref, "targets": target})).await;
    let other = f
        .create_webhook("standard-b", json!({"provider": "standard", "secretRef": secret_ref, "targets": target}))
        .await;
    let standard_call = |port: u16, path: String, id: String| async move {
        let body = br#"{"type":"build.finished"}"#;
        let timestamp = jiff::Timestamp::now().as_second();
        let signature = standard_signature(SECRET.as_bytes(), &id, timestamp, body);
        let ts = timestamp.to_string();
        let headers = [
            ("webhook-id", id.as_str()),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        post(port, &path, &headers, body).await
    };
    let sequence = |annotation: Option<String>| {
        annotation.and_then(|t| serde_json::from_str::<Value>(&t).ok()).and_then(|t| t["sequence"].as_i64())
    };

    // One signed delivery sent to both replicas is recorded once.
    let first = standard_call(f.operator.trigger_port, standard.clone(), "msg_both".into()).await;
    assert_eq!(first.status, 202, "{first:?}");
    let recorded = sequence(hooks.annotation().await);
    let second = support::cluster::eventually(
        "the second replica knows the Webhook",
        std::time::Duration::from_secs(30),
        || async {
            let reply = standard_call(replica.trigger_port, standard.clone(), "msg_both".into()).await;
            (reply.status != 404 && reply.status != 503).then_some(reply)
        },
    )
    .await;
    assert_eq!(second.status, 200, "the other replica records it no second time: {second:?}");
    assert_eq!(second.json()["duplicate"], "msg_both");
    assert_eq!(sequence(hooks.annotation().await), recorded, "nothing recorded again");

    // The same id from another Webhook is another delivery.
    let elsewhere = standard_call(f.operator.trigger_port, other.clone(), "msg_both".into()).await;
    assert_eq!(elsewhere.status, 202, "ids are scoped to their Webhook: {elsewhere:?}");

    // GitHub: a redelivery keeps its X-GitHub-Delivery.
    let github =
        f.create_webhook("github", json!({"provider": "github", "secretRef": secret_ref, "targets": target})).await;
    let mut push = payload("github_push.json");
    set(&mut push, "/repository/clone_url", json!(f.url()));
    set(&mut push, "/after", json!(head));
    let delivery = |id: &'static str| [("X-GitHub-Delivery", id)];
    let original =
        hooks.github_with(&github, "push", &push, SECRET, &delivery("72d3162e-cc78-11e3-81ab-4c9367dc0958")).await;
    assert_eq!(original.status, 202, "{original:?}");
    let recorded = sequence(hooks.annotation().await);
    let redelivery =
        hooks.github_with(&github, "push", &push, SECRET, &delivery("72d3162e-cc78-11e3-81ab-4c9367dc0958")).await;
    assert_eq!(redelivery.status, 200, "a redelivery records nothing: {redelivery:?}");
    assert_eq!(sequence(hooks.annotation().await), recorded);
    let next =
        hooks.github_with(&github, "push", &push, SECRET, &delivery("8a1c5a0e-cc78-11e3-81ab-4c9367dc0958")).await;
    assert_eq!(next.status, 202, "another delivery is recorded: {next:?}");

    // A delivery that could not be recorded (503) is recorded when the sender retries it.
    let refusal = RefuseUpdates::start(&f.client, &f.ns.name).await;
    let mut probe = 0;
    support::cluster::eventually("trigger writes refused", std::time::Duration::from_secs(30), || {
        probe += 1;
        let call = standard_call(hooks.port, standard.clone(), format!("msg_probe_{probe}"));
        async move { (call.await.status == 503).then_some(()) }
    })
    .await;
    let refused = standard_call(hooks.port, standard.clone(), "msg_retry".into()).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    refusal.stop().await;
    let retried = support::cluster::eventually(
        "the retry recorded once writes work again",
        std::time::Duration::from_secs(30),
        || {
            let standard = standard.clone();
            async move {
                let reply = standard_call(hooks.port, standard, "msg_retry".into()).await;
                assert_ne!(reply.status, 401, "a retry after a 503 is no replay: {reply:?}");
                (reply.status == 202).then_some(reply)
            }
        },
    )
    .await;
    assert!(retried.json()["triggerId"].is_string(), "{retried:?}");
}
