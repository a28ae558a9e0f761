//! End to end: GitOpsApplications deploy from a private repository on the real Git server into the real control plane.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use support::fixture::{Fixture, REPO, SLOW_ROLLOUT, demo_manifests, is_ready_at, ready};

fn deployment_available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Available" && c.status == "True"))
        && d.status.as_ref().and_then(|s| s.available_replicas) == Some(2)
}

#[tokio::test]
async fn an_application_deploys_from_a_private_repository_and_becomes_ready() {
    let Some(f) = Fixture::start("deploy", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    let app = f.wait_app("shop", "Ready=True at the pushed revision", |a| is_ready_at(a, &sha)).await;
    let status = app.status.expect("status");
    assert_eq!(status.inventory.len(), 3, "inventory: {:?}", status.inventory);
    assert_eq!(status.deployments.last().map(|d| d.result), Some(tugboat::api::DeploymentResult::Succeeded));

    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    let d = f
        .eventually("Deployment web Available with 2 replicas", || async {
            deployments.get("web").await.ok().filter(deployment_available)
        })
        .await;
    let container = &d.spec.expect("spec").template.spec.expect("pod spec").containers[0];
    assert_eq!(container.image.as_deref(), Some("registry.example.com/web:stable"));
    let labels = d.metadata.labels.expect("labels");
    assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("tugboat"));
    let services: Api<Service> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(services.get("web").await.is_ok(), "Service web applied");
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    let cm = config_maps.get("web-config").await.expect("ConfigMap web-config applied");
    assert_eq!(cm.data.expect("data").get("tag").map(String::as_str), Some("stable"));

    // Server-side apply under the application's own field manager.
    let managers: Vec<_> =
        cm.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert_eq!(managers, [format!("tugboat/{}/shop", f.ns.name)], "managers: {managers:?}");
}

#[tokio::test]
async fn new_commits_are_applied_after_a_poll_and_after_a_reconcile_request() {
    let Some(f) = Fixture::start("commits", &demo_manifests(), &[]).await else { return };
    let first = f.head();
    f.create_app("polled", f.app_spec(json!({"updates": {"mechanism": "Polling", "interval": "5s"}}))).await;
    f.create_app("hooked", f.app_spec(json!({"updates": {"mechanism": "Webhook", "interval": "10m"}, "targetNamespace": f.ns.name, "source": {"path": "other"}}))).await;
    f.wait_app("polled", "first revision", |a| is_ready_at(a, &first)).await;
    f.wait_app("hooked", "first revision", |a| a.status.as_ref().is_some_and(|s| s.last_attempted_revision.is_some()))
        .await;

    // Polling picks up a new commit by itself.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  tag: second\n";
    let second = f.commit(
        &[
            ("deploy/config.yaml", Some(cm)),
            ("other/c.yaml", Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata: {v: \"1\"}\n")),
        ],
        "second",
    );
    f.wait_app("polled", "second revision via polling", |a| is_ready_at(a, &second)).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    let live = config_maps.get("web-config").await.expect("config map");
    assert_eq!(live.data.expect("data").get("tag").map(String::as_str), Some("second"));

    // The webhook-mechanism application does not poll; a reconcile request makes it fetch.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hooked = f.apps().get("hooked").await.expect("hooked");
    assert_ne!(
        hooked.status.and_then(|s| s.last_applied_revision),
        Some(format!("main@sha1:{second}")),
        "no polling with mechanism Webhook"
    );
    let patch = json!({"metadata": {"annotations": {"tugboat.dev/reconcile-requested-at": "2026-01-01T00:00:00Z"}}});
    f.apps().patch("hooked", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
    f.wait_app("hooked", "second revision after a reconcile request", |a| is_ready_at(a, &second)).await;
    assert!(config_maps.get("other").await.is_ok(), "other/c.yaml applied");
}

#[tokio::test]
async fn removed_files_are_pruned_but_objects_the_application_did_not_create_are_left_alone() {
    let mut files = demo_manifests();
    files.push((
        "deploy/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata: {a: b}\n".into(),
    ));
    files.push((
        "deploy/adopted.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: adopted\ndata: {a: b}\n".into(),
    ));
    let Some(f) = Fixture::start("prune", &files, &[]).await else { return };
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    // A bystander nobody declared in Git.
    let bystander: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "bystander"}, "data": {"x": "y"}})).expect("cm");
    config_maps.create(&PostParams::default(), &bystander).await.expect("bystander");

    let first = f.head();
    f.create_app("shop", f.app_spec(json!({"prune": true}))).await;
    f.wait_app("shop", "first revision", |a| is_ready_at(a, &first)).await;
    assert!(config_maps.get("extra").await.is_ok());

    // Someone else takes over `adopted` (our labels removed): it is no longer provably ours.
    let strip =
        json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null, "tugboat.dev/application": null}}});
    config_maps.patch("adopted", &PatchParams::default(), &Patch::Merge(&strip)).await.expect("strip labels");

    let second = f.commit(&[("deploy/extra.yaml", None), ("deploy/adopted.yaml", None)], "remove extra and adopted");
    f.request_reconcile("shop").await;
    let app = f.wait_app("shop", "second revision", |a| is_ready_at(a, &second)).await;
    f.eventually("extra pruned", || async {
        config_maps.get_opt("extra").await.ok().flatten().is_none().then_some(())
    })
    .await;
    assert!(config_maps.get("adopted").await.is_ok(), "an object the application no longer owns is left alone");
    assert!(config_maps.get("bystander").await.is_ok(), "an object the application never created is left alone");
    let inventory = app.status.expect("status").inventory;
    assert!(inventory.iter().all(|e| e.name != "extra" && e.name != "adopted"), "inventory: {inventory:?}");
}

#[tokio::test]
async fn a_commit_with_one_invalid_manifest_applies_nothing_and_keeps_the_previous_revision() {
    let Some(f) = Fixture::start("invalid", &demo_manifests(), &[]).await else { return };
    let first = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first revision", |a| is_ready_at(a, &first)).await;

    let new_cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: brand-new\ndata: {a: b}\n";
    let bad = "apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\nspec:\n  ports: [{port: not-a-number}]\n";
    let changed_cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  tag: changed\n";
    let second = f.commit(
        &[
            ("deploy/a-new.yaml", Some(new_cm)),
            ("deploy/broken.yaml", Some(bad)),
            ("deploy/config.yaml", Some(changed_cm)),
        ],
        "one invalid manifest",
    );
    f.request_reconcile("shop").await;
    let app = f
        .wait_app("shop", "Ready=False for the invalid commit", |a| {
            a.status.as_ref().and_then(|s| s.last_attempted_revision.clone()) == Some(format!("main@sha1:{second}"))
                && ready(a).is_some_and(|(s, _, _)| s == "False")
        })
        .await;
    let (_, reason, message) = ready(&app).expect("ready");
    assert!(message.contains("deploy/broken.yaml"), "message names the file: {message}");
    assert!(message.contains("Service/broken"), "message names the object: {message}");
    assert_eq!(reason, "ValidationFailed");
    assert_eq!(app.status.expect("status").last_applied_revision, Some(format!("main@sha1:{first}")));
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(config_maps.get_opt("brand-new").await.expect("get").is_none(), "nothing from the invalid commit applied");
    let live = config_maps.get("web-config").await.expect("web-config");
    assert_eq!(live.data.expect("data").get("tag").map(String::as_str), Some("stable"), "previous revision stays live");
}

#[tokio::test]
async fn source_and_variable_problems_each_say_which() {
    // JSON logs: span fields are written out in full there.
    let Some(f) = Fixture::start("errors", &demo_manifests(), &["--log-format", "json"]).await else { return };
    f.create_secret("wrong-auth", &[("username", "deployer"), ("password", "wrong")]).await;
    let with_userinfo = f.server.url("team/app.git").replacen("://", "://deployer:leaked-token-5f2a@", 1);
    let strict = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\ndata:\n  value: ${NOT_SET}\n";
    f.commit(&[("strict/cm.yaml", Some(strict))], "strict manifest");
    let missing_repo = f.server.url("team/missing.git");
    let cases = [
        (
            "wrong-password",
            f.app_spec(json!({"source": {"secretRef": {"name": "wrong-auth"}}})),
            "AuthenticationFailed",
            "authentication failed",
        ),
        (
            "missing-repo",
            f.app_spec(json!({"source": {"repoURL": missing_repo}})),
            "RepositoryNotFound",
            "team/missing.git",
        ),
        ("missing-ref", f.app_spec(json!({"source": {"ref": {"branch": "nope"}}})), "RefNotFound", "nope"),
        (
            "strict-var",
            f.app_spec(json!({"strictVariables": true, "source": {"path": "strict"}})),
            "RenderFailed",
            "NOT_SET",
        ),
        (
            "missing-secret",
            f.app_spec(json!({"source": {"secretRef": {"name": "absent"}}})),
            "SecretNotFound",
            "absent",
        ),
        (
            // The operator allows 127.0.0.0/8 for the test servers, never the metadata address.
            "metadata",
            f.app_spec(json!({"source": {"repoURL": "http://169.254.169.254/latest/meta-data.git"}})),
            "EgressRefused",
            "169.254.169.254 is link-local (cloud metadata)",
        ),
    ];
    for (name, spec, _, _) in &cases {
        f.create_app(name, spec.clone()).await;
    }
    for (name, _, expected_reason, expected_text) in cases {
        let app = f
            .wait_app(name, &format!("Ready=False {expected_reason}"), |a| {
                ready(a).is_some_and(|(s, r, _)| s == "False" && r == expected_reason)
            })
            .await;
        let (_, _, message) = ready(&app).expect("ready");
        assert!(message.contains(expected_text), "{name}: {message:?} should mention {expected_text:?}");
        assert!(
            !message.contains("wrong") || name != "wrong-password" || !message.contains(":wrong@"),
            "no password in messages"
        );
        assert!(!message.contains("leaked-token-5f2a"), "{name}: no URL credentials in status: {message}");
    }
    // Credentials in the URL itself (whatever the server makes of them): never in status or logs.
    f.create_app("userinfo-url", f.app_spec(json!({"source": {"repoURL": with_userinfo}}))).await;
    let app = f.wait_app("userinfo-url", "a Ready condition", |a| ready(a).is_some()).await;
    let (_, _, message) = ready(&app).expect("ready");
    assert!(!message.contains("leaked-token-5f2a"), "no URL credentials in status: {message}");
    let log = f.operator.log_text();
    assert!(log.contains("userinfo-url"), "the log covers the application");
    assert!(!log.contains("leaked-token-5f2a"), "no URL credentials in the log (span fields included)");
}

#[tokio::test]
async fn two_applications_on_one_repository_fetch_once_per_new_revision() {
    let Some(f) = Fixture::start("shared", &demo_manifests(), &[]).await else { return };
    let first = f.head();
    let spec =
        |ns: &str| f.app_spec(json!({"targetNamespace": ns, "updates": {"mechanism": "Polling", "interval": "5s"}}));
    let other_ns = support::cluster::TestNamespace::create(&f.client, "shared-b").await;
    support::restricted::allow_deploys(&f.client, &f.ns.name, &other_ns.name).await;
    f.create_app("a", spec(&f.ns.name)).await;
    f.create_app("b", spec(&other_ns.name)).await;
    f.wait_app("a", "first revision", |a| is_ready_at(a, &first)).await;
    f.wait_app("b", "first revision", |a| is_ready_at(a, &first)).await;
    assert_eq!(f.server.fetch_count(REPO), 1, "one fetch for the first revision shared by both applications");

    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  tag: next\n";
    let second = f.commit(&[("deploy/config.yaml", Some(cm))], "next");
    f.wait_app("a", "second revision", |a| is_ready_at(a, &second)).await;
    f.wait_app("b", "second revision", |a| is_ready_at(a, &second)).await;
    // Several polls happen meanwhile; unchanged revisions cost no fetch.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(f.server.fetch_count(REPO), 2, "one more fetch for the new revision");
    assert!(f.server.ls_remote_count(REPO) >= 4, "polls ask the remote for the revision");
}

#[tokio::test]
async fn deleting_an_application_removes_its_objects_only_with_prune() {
    let Some(f) = Fixture::start("delete", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    let keep_ns = support::cluster::TestNamespace::create(&f.client, "delete-keep").await;
    support::restricted::allow_deploys(&f.client, &f.ns.name, &keep_ns.name).await;
    f.create_app("pruned", f.app_spec(json!({"prune": true}))).await;
    f.create_app("kept", f.app_spec(json!({"prune": false, "targetNamespace": keep_ns.name}))).await;
    f.wait_app("pruned", "ready", |a| is_ready_at(a, &sha)).await;
    f.wait_app("kept", "ready", |a| is_ready_at(a, &sha)).await;

    f.apps().delete("pruned", &DeleteParams::default()).await.expect("delete pruned");
    f.apps().delete("kept", &DeleteParams::default()).await.expect("delete kept");
    for name in ["pruned", "kept"] {
        f.eventually(&format!("application {name} gone"), || async {
            f.apps().get_opt(name).await.ok().flatten().is_none().then_some(())
        })
        .await;
    }
    let pruned_cms: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    let kept_cms: Api<ConfigMap> = Api::namespaced(f.client.clone(), &keep_ns.name);
    assert!(
        pruned_cms.get_opt("web-config").await.expect("get").is_none(),
        "prune: objects deleted with the application"
    );
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(deployments.get_opt("web").await.expect("get").is_none());
    assert!(kept_cms.get_opt("web-config").await.expect("get").is_some(), "no prune: objects kept");
}

#[tokio::test]
async fn a_service_account_without_rights_gets_a_clear_forbidden_status() {
    let Some(f) = Fixture::start("rbac", &demo_manifests(), &[]).await else { return };
    // The tenant may manage ConfigMaps only.
    let objects = json!([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "tenant"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "configmaps"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "tenant"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmaps"},
         "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": f.ns.name}]}
    ]);
    let apply = |object: serde_json::Value| {
        let client = f.client.clone();
        let ns = f.ns.name.clone();
        async move {
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let gvk = if kind == "ServiceAccount" {
                kube::core::GroupVersionKind::gvk("", "v1", &kind)
            } else {
                kube::core::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", &kind)
            };
            let resource = kube::core::ApiResource::from_gvk(&gvk);
            let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client, &ns, &resource);
            api.patch(&name, &PatchParams::apply("tests"), &Patch::Apply(&object)).await.expect("apply rbac");
        }
    };
    for object in objects.as_array().expect("array").clone() {
        apply(object).await;
    }
    f.create_app("tenant-app", f.app_spec(json!({"serviceAccountName": "tenant"}))).await;
    let app = f
        .wait_app("tenant-app", "Ready=False Forbidden", |a| {
            ready(a).is_some_and(|(s, r, _)| s == "False" && r == "Forbidden")
        })
        .await;
    let (_, _, message) = ready(&app).expect("ready");
    assert!(message.contains("Deployment/web"), "names the object: {message}");
    assert!(message.contains("system:serviceaccount"), "names who was refused: {message}");
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    assert!(
        config_maps.get_opt("web-config").await.expect("get").is_none(),
        "the dry run failed, so nothing was applied"
    );
}

#[tokio::test]
async fn namespaces_and_crds_are_applied_before_the_objects_that_need_them() {
    // A Namespace and a CRD are cluster-wide: a single-team install (the operator's own rights).
    let Some(f) = Fixture::start("order", &[], &["--apply-as-operator"]).await else { return };
    let target = format!("{}-made", f.ns.name);
    let group = format!("{}.example.com", f.ns.name);
    let crd = format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {{type: object, properties: {{size: {{type: integer}}}}}}
"#
    );
    // File order puts the users of the Namespace and the CRD first on purpose.
    let widget = format!(
        "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: {target}\nspec:\n  size: ${{SIZE:-3}}\n"
    );
    let cm =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: inside\n  namespace: {target}\ndata: {{a: b}}\n");
    let ns = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {target}\n");
    let sha = f.commit(
        &[
            ("deploy/a-widget.yaml", Some(&widget)),
            ("deploy/b-cm.yaml", Some(&cm)),
            ("deploy/y-crd.yaml", Some(&crd)),
            ("deploy/z-ns.yaml", Some(&ns)),
        ],
        "namespace, crd and their users",
    );
    f.create_app("ordered", f.app_spec(json!({"prune": true}))).await;
    let app = f.wait_app("ordered", "Ready at the commit", |a| is_ready_at(a, &sha)).await;
    let kinds: Vec<_> = app.status.expect("status").inventory.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds.len(), 4, "inventory: {kinds:?}");
    let resource = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(&group, "v1", "Widget"));
    let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(f.client.clone(), &target, &resource);
    let w = widgets.get("w").await.expect("widget applied");
    assert_eq!(w.data["spec"]["size"], json!(3), "typed placeholder value");
    // Clean up the cluster-scoped objects this test made.
    f.apps().delete("ordered", &DeleteParams::default()).await.expect("delete app");
    f.eventually("namespace and CRD pruned with the application", || async {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(f.client.clone());
        let gone =
            namespaces.get_opt(&target).await.ok().flatten().is_none_or(|n| n.metadata.deletion_timestamp.is_some());
        gone.then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_rollout_that_never_completes_fails_health_after_the_timeout_and_events_tell_the_story() {
    let Some(f) = Fixture::start("health", &demo_manifests(), &[]).await else { return };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "ready", |a| is_ready_at(a, &sha)).await;

    // No node matches this selector: the new pods stay Pending and the rollout never completes.
    let stuck = demo_manifests()[0]
        .1
        .replace("    spec:\n      containers:", "    spec:\n      nodeSelector: {disk: none}\n      containers:");
    let second = f.commit(&[("deploy/web.yaml", Some(&stuck))], "unschedulable");
    let patch = json!({"spec": {"healthTimeout": "5s"}});
    f.apps().patch("shop", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("shorter timeout");
    let app = f
        .wait_app("shop", "Ready=False HealthCheckFailed", |a| {
            ready(a).is_some_and(|(s, r, _)| s == "False" && r == "HealthCheckFailed")
        })
        .await;
    let status = app.status.expect("status");
    assert_eq!(status.last_applied_revision, Some(format!("main@sha1:{second}")), "the revision was applied");
    let healthy = status.conditions.iter().find(|c| c.type_ == "Healthy").expect("Healthy condition");
    assert_eq!(healthy.status, "False");
    assert!(healthy.message.contains("Deployment/web"), "names the workload: {}", healthy.message);
    assert_eq!(status.deployments.last().map(|d| d.result), Some(tugboat::api::DeploymentResult::Failed));

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(f.client.clone(), &f.ns.name);
    let reasons: Vec<String> = f
        .eventually("deployment events", || async {
            let list = events.list(&Default::default()).await.ok()?;
            let reasons: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("shop"))
                .filter_map(|e| e.reason)
                .collect();
            reasons.iter().any(|r| r == "DeploymentFailed").then_some(reasons)
        })
        .await;
    assert!(reasons.iter().any(|r| r == "DeploymentStarted"), "events: {reasons:?}");
    assert!(reasons.iter().any(|r| r == "DeploymentSucceeded"), "events: {reasons:?}");
}

#[tokio::test]
async fn a_spec_the_operator_cannot_serve_stalls_without_retrying() {
    let Some(f) = Fixture::start("stalled", &demo_manifests(), &[]).await else { return };
    f.create_app("local", f.app_spec(json!({"source": {"repoURL": "file:///srv/git/app.git", "secretRef": null}})))
        .await;
    let app = f
        .wait_app("local", "Stalled=True", |a| {
            a.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Stalled" && c.status == "True"))
        })
        .await;
    let (status, reason, message) = ready(&app).expect("ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(message.contains("--allow-file-sources"), "{message}");
    // No hot loop: the status is not rewritten while nothing changes.
    let version = app.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = f.apps().get("local").await.expect("get");
    assert_eq!(later.metadata.resource_version, version, "a stalled application is left alone until its spec changes");
}

/// With `--concurrency 1`, an application waiting for a slow rollout holds no reconcile (its
/// rollout is a persisted phase):
/// another application deploys meanwhile instead of queueing behind that rollout.
#[tokio::test]
async fn a_slow_rollout_does_not_hold_up_other_applications() {
    use tugboat::api::DeploymentResult;
    let quick = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: quick\ndata: {ready: \"yes\"}\n";
    let files = [("slow/app.yaml", SLOW_ROLLOUT.to_owned()), ("quick/config.yaml", quick.to_owned())];
    let Some(f) = Fixture::start("slots", &files, &["--concurrency", "1"]).await else { return };
    let sha = f.head();
    let running = |a: &tugboat::api::GitOpsApplication| {
        a.status.as_ref().and_then(|s| s.deployments.last()).is_some_and(|d| d.result == DeploymentResult::Running)
    };
    f.create_app("slow", f.app_spec(json!({"source": {"path": "slow"}, "healthTimeout": "120s"}))).await;
    f.wait_app("slow", "deploying and waiting for its rollout", running).await;
    f.create_app("quick", f.app_spec(json!({"source": {"path": "quick"}}))).await;
    f.wait_app("quick", "Ready=True while the slow rollout goes on", |a| is_ready_at(a, &sha)).await;
    let slow = f.apps().get("slow").await.expect("slow");
    assert!(running(&slow), "the slow rollout was still under way: {:?}", slow.status.map(|s| s.deployments));
}
