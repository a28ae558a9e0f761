//! End to end: Kustomize overlays and Helm charts from Git, built by the pinned tools of the
//! test environment, substituted, overridden by webhook calls and applied to the real control
//! plane; build failures and hostile kustomizations and charts refused with a clear status
//! while the operator keeps running.
//!
//! The repositories are the fixtures of `tests/fixtures/` (each with a README.md saying what
//! it must produce), committed with their directory layout.

mod support;

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tugboat::api::{DeploymentResult, GitOpsApplication};

use support::fixture::{Fixture, REPO, is_ready_at, ready};
use support::http::{post, request};

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers
// ---------------------------------------------------------------------------------------------

/// `tests/fixtures/<dir>`.
fn fixture_dir(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir)
}

/// Every regular file below `tests/fixtures/<dir>` (README.md files left out: they describe
/// the fixture; symbolic links left out: a test that needs one makes it), as repository paths
/// below `prefix` ("" for the repository root).
fn fixture(dir: &str, prefix: &str) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).expect("fixture dir").map(|e| e.expect("entry").path()).collect();
        entries.sort();
        for path in entries {
            let kind = std::fs::symlink_metadata(&path).expect("fixture entry").file_type();
            if kind.is_dir() {
                walk(root, &path, out);
            } else if kind.is_file() && path.file_name().is_some_and(|n| n != "README.md") {
                let rel = path.strip_prefix(root).expect("below the fixture").to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&path).expect("fixture file")));
            }
        }
    }
    let root = fixture_dir(dir);
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    assert!(!files.is_empty(), "fixture {dir} is empty");
    let prefix = prefix.trim_matches('/');
    files
        .into_iter()
        .map(|(path, text)| (if prefix.is_empty() { path } else { format!("{prefix}/{path}") }, text))
        .collect()
}

/// The borrowed form `Fixture::start` takes.
fn as_files(files: &[(String, String)]) -> Vec<(&str, String)> {
    files.iter().map(|(path, text)| (path.as_str(), text.clone())).collect()
}

/// An application spec on the fixture's repository at `path`, with `extra` merged in. The
/// update interval is long: nothing but what a test does makes the application reconcile.
fn spec_at(f: &Fixture, path: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec =
        f.app_spec(json!({"source": {"path": path}, "updates": {"mechanism": "Webhook", "interval": "10m"}}));
    support::fixture::merge(&mut spec, extra);
    spec
}

fn api<K>(f: &Fixture) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::namespaced(f.client.clone(), &f.ns.name)
}

fn data(cm: &ConfigMap, key: &str) -> Option<String> {
    cm.data.as_ref()?.get(key).cloned()
}

fn label(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> Option<String> {
    meta.labels.as_ref()?.get(key).cloned()
}

fn pod_template(d: &Deployment) -> &k8s_openapi::api::core::v1::PodTemplateSpec {
    &d.spec.as_ref().expect("spec").template
}

fn image(d: &Deployment) -> Option<String> {
    pod_template(d).spec.as_ref()?.containers[0].image.clone()
}

fn env_value(d: &Deployment, name: &str) -> Option<String> {
    let containers = &pod_template(d).spec.as_ref()?.containers;
    containers[0].env.as_ref()?.iter().find(|e| e.name == name)?.value.clone()
}

fn restarted_at(d: &Deployment) -> Option<String> {
    pod_template(d).metadata.as_ref()?.annotations.as_ref()?.get("kubectl.kubernetes.io/restartedAt").cloned()
}

fn inventory(app: &GitOpsApplication) -> Vec<String> {
    let entries = app.status.as_ref().map(|s| s.inventory.clone()).unwrap_or_default();
    let mut names: Vec<String> = entries.iter().map(|e| format!("{}/{}", e.kind, e.name)).collect();
    names.sort();
    names
}

/// The value of one sample line of `/metrics` (`name{labels} value`); a series not yet
/// created counts 0.
fn sample(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

async fn scrape(f: &Fixture) -> String {
    let reply = request(f.operator.probe_port, "GET", "/metrics", &[], b"").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

/// How many times `tool` ran with `result` (`succeeded`, `failed`).
fn builds(text: &str, tool: &str, result: &str) -> f64 {
    sample(text, &format!("tugboat_builds_total{{tool=\"{tool}\",result=\"{result}\"}}"))
}

/// Ready=False with reason BuildFailed: the condition's message.
async fn build_failed(f: &Fixture, name: &str) -> String {
    let app = f
        .wait_app(name, "Ready=False BuildFailed", |a| {
            ready(a).is_some_and(|(s, r, _)| s == "False" && r == "BuildFailed")
        })
        .await;
    let (_, _, message) = ready(&app).expect("Ready");
    eprintln!("{name}: {message}");
    assert!(message.starts_with("revision main@sha1:"), "{name}: the message names the revision: {message}");
    message
}

/// A build tool that died at its memory limit (`--build-max-memory`): Go's own words, or
/// tugboat's for a tool killed by a signal.
fn killed_for_memory(message: &str) -> bool {
    ["fatal error: runtime: out of memory", "fatal error: runtime: cannot allocate memory", "--build-max-memory"]
        .iter()
        .any(|why| message.contains(why))
}

/// Posts a webhook call and waits until the application handled it and its deployment
/// succeeded; returns the application then.
async fn call_and_wait(f: &Fixture, app: &str, target: &str) -> GitOpsApplication {
    let reply = post(f.operator.trigger_port, target, &[], b"").await;
    assert_eq!(reply.status, 202, "{target}: {reply:?}");
    let id = reply.json()["triggerId"].as_str().expect("triggerId").to_owned();
    f.wait_app(app, &format!("the call {target} handled and deployed"), |a| {
        a.status.as_ref().is_some_and(|s| {
            s.last_trigger.as_ref().is_some_and(|t| t.id == id)
                && s.deployments.last().is_some_and(|d| {
                    d.result == DeploymentResult::Succeeded && d.trigger_id.as_deref() == Some(id.as_str())
                })
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// 1. Kustomize overlays
// ---------------------------------------------------------------------------------------------

/// Two applications on one repository, the staging and prod overlays of kustomize-shop:
/// namePrefix, labels, `images`, both kinds of patch, the generated ConfigMap (hash suffix,
/// literals, `${SERVICE_TAG:-stable}` substituted after the build), the component; one fetch
/// for both. Then the prod application moves to overlays/prod-v2 and exactly Service prod-web
/// is pruned.
#[tokio::test]
async fn kustomize_overlays_of_one_repository_deploy_from_one_fetch_and_prune_what_an_overlay_drops() {
    let files = fixture("kustomize-shop", "");
    let Some(f) = Fixture::start("kustomize", &as_files(&files), &[]).await else { return };
    let sha = f.head();
    f.create_app("staging", spec_at(&f, "overlays/staging", json!({}))).await;
    // Forced with spec.source.kustomize (detection would find kustomization.yaml too).
    f.create_app("prod", spec_at(&f, "overlays/prod", json!({"prune": true, "source": {"kustomize": {}}}))).await;
    let staging = f.wait_app("staging", "Ready at the pushed revision", |a| is_ready_at(a, &sha)).await;
    let prod = f.wait_app("prod", "Ready at the pushed revision", |a| is_ready_at(a, &sha)).await;
    assert_eq!(f.server.fetch_count(REPO), 1, "one fetch of the revision for both applications");

    assert_eq!(
        inventory(&staging),
        [
            "ConfigMap/staging-extra",
            "ConfigMap/staging-monitoring",
            "ConfigMap/staging-settings-t6k9ftg69d",
            "Deployment/staging-web",
            "Service/staging-web"
        ]
    );
    assert_eq!(inventory(&prod), ["ConfigMap/prod-settings-2h42td9ggm", "Deployment/prod-web", "Service/prod-web"]);

    let deployments: Api<Deployment> = api(&f);
    let config_maps: Api<ConfigMap> = api(&f);
    let services: Api<Service> = api(&f);

    // staging: base + component, namePrefix staging-, label env: staging, strategic merge patch.
    let web = deployments.get("staging-web").await.expect("Deployment staging-web");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:2.0-staging"), "images: newTag");
    assert_eq!(web.spec.as_ref().and_then(|s| s.replicas), Some(1), "strategic merge patch replicas.yaml");
    assert_eq!(label(&web.metadata, "env").as_deref(), Some("staging"));
    assert_eq!(label(&web.metadata, "app.kubernetes.io/managed-by").as_deref(), Some("tugboat"));
    let selector = web.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
    assert_eq!(
        selector.into_iter().collect::<Vec<_>>(),
        [("app".to_owned(), "web".to_owned())],
        "includeSelectors: false"
    );
    let annotations = web.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("prometheus.io/scrape").map(String::as_str), Some("true"), "component patch");
    assert_eq!(annotations.get("prometheus.io/port").map(String::as_str), Some("8080"), "component patch");
    assert_eq!(env_value(&web, "SERVICE_TAG").as_deref(), Some("stable"), "${{SERVICE_TAG:-stable}} substituted");
    let env_from = pod_template(&web).spec.as_ref().and_then(|s| s.containers[0].env_from.clone()).unwrap_or_default();
    let referenced = env_from.first().and_then(|e| e.config_map_ref.as_ref()).map(|r| r.name.clone());
    assert_eq!(referenced.as_deref(), Some("staging-settings-t6k9ftg69d"), "kustomize rewrote the reference");
    let settings = config_maps.get("staging-settings-t6k9ftg69d").await.expect("generated ConfigMap");
    assert_eq!(data(&settings, "MODE").as_deref(), Some("staging"));
    assert_eq!(data(&settings, "TAG").as_deref(), Some("stable"), "the literal's placeholder substituted");
    assert_eq!(label(&settings.metadata, "env").as_deref(), Some("staging"));
    let monitoring = config_maps.get("staging-monitoring").await.expect("the component's ConfigMap");
    assert_eq!(data(&monitoring, "scrape-path").as_deref(), Some("/metrics"));
    let extra = config_maps.get("staging-extra").await.expect("the base's ConfigMap");
    assert_eq!(label(&extra.metadata, "env").as_deref(), Some("staging"));
    let service = services.get("staging-web").await.expect("Service staging-web");
    assert_eq!(label(&service.metadata, "env").as_deref(), Some("staging"));

    // prod: base only, JSON 6902 patch, $patch: delete.
    let web = deployments.get("prod-web").await.expect("Deployment prod-web");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:2.0"));
    assert_eq!(web.spec.as_ref().and_then(|s| s.replicas), Some(3), "JSON 6902 patch");
    assert_eq!(label(&web.metadata, "env").as_deref(), Some("prod"));
    assert!(!web.metadata.annotations.unwrap_or_default().contains_key("prometheus.io/scrape"), "no component");
    let settings = config_maps.get("prod-settings-2h42td9ggm").await.expect("generated ConfigMap");
    assert_eq!(data(&settings, "MODE").as_deref(), Some("prod"));
    assert_eq!(data(&settings, "TAG"), None);
    for absent in ["prod-extra", "prod-monitoring"] {
        assert!(config_maps.get_opt(absent).await.expect("get").is_none(), "{absent} is not built");
    }
    assert!(services.get("prod-web").await.is_ok());

    // prod → prod-v2 (same revision): exactly Service prod-web goes; the rest stays as it was.
    let kept_cm = config_maps.get("prod-settings-2h42td9ggm").await.expect("cm").metadata.uid;
    let kept_deployment = deployments.get("prod-web").await.expect("deployment").metadata.uid;
    let patch = json!({"spec": {"source": {"path": "overlays/prod-v2"}}});
    let patched = f.apps().patch("prod", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("switch path");
    let generation = patched.metadata.generation;
    let prod = f
        .wait_app("prod", "Ready for overlays/prod-v2", |a| {
            is_ready_at(a, &sha) && a.status.as_ref().and_then(|s| s.observed_generation) == generation
        })
        .await;
    assert_eq!(inventory(&prod), ["ConfigMap/prod-settings-2h42td9ggm", "Deployment/prod-web"]);
    f.eventually("Service prod-web pruned", || async {
        services.get_opt("prod-web").await.ok().flatten().is_none().then_some(())
    })
    .await;
    assert_eq!(config_maps.get("prod-settings-2h42td9ggm").await.expect("cm").metadata.uid, kept_cm, "kept as is");
    assert_eq!(deployments.get("prod-web").await.expect("deployment").metadata.uid, kept_deployment, "kept as is");
    assert!(services.get("staging-web").await.is_ok(), "the other application's objects are left alone");
    assert_eq!(f.server.fetch_count(REPO), 1, "a new path of a fetched revision needs no fetch");
}

// ---------------------------------------------------------------------------------------------
// 2. Kustomize and webhook calls
// ---------------------------------------------------------------------------------------------

/// Webhook calls on a Kustomize application: `?SERVICE_TAG=` reaches the substituted output
/// (the generated ConfigMap keeps its name: the hash is kustomize's, taken before
/// substitution), `tag=` sets the workload's image tag, `rollout-restart=` restarts it. The
/// build itself never depends on the call: kustomize runs once.
#[tokio::test]
async fn webhook_calls_reach_a_kustomize_application_after_its_build() {
    let files = fixture("kustomize-shop", "");
    let Some(f) = Fixture::start("kustomize-hook", &as_files(&files), &[]).await else { return };
    let sha = f.head();
    f.create_app("staging", spec_at(&f, "overlays/staging", json!({}))).await;
    f.wait_app("staging", "first deployment", |a| is_ready_at(a, &sha)).await;
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "staging"}]})).await;
    let port = f.operator.trigger_port;
    let deployments: Api<Deployment> = api(&f);
    let config_maps: Api<ConfigMap> = api(&f);

    // The variables a call may set come from the built output.
    let refused = post(port, &format!("{path}?NOT_DECLARED=x"), &[], b"").await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body.contains("SERVICE_TAG"), "names the variables of the built output: {}", refused.body);

    let app = call_and_wait(&f, "staging", &format!("{path}?SERVICE_TAG=canary")).await;
    assert_eq!(app.status.as_ref().and_then(|s| s.variables.get("SERVICE_TAG")).map(String::as_str), Some("canary"));
    let settings = config_maps.get("staging-settings-t6k9ftg69d").await.expect("same generated name");
    assert_eq!(data(&settings, "TAG").as_deref(), Some("canary"), "the call's value substituted");
    assert_eq!(data(&settings, "MODE").as_deref(), Some("staging"));
    let web = deployments.get("staging-web").await.expect("staging-web");
    assert_eq!(env_value(&web, "SERVICE_TAG").as_deref(), Some("canary"));
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:2.0-staging"), "no tag= yet");
    assert_eq!(inventory(&app).len(), 5, "no second generated ConfigMap: {:?}", inventory(&app));

    let app = call_and_wait(&f, "staging", &format!("{path}?tag=3.1")).await;
    let web = deployments.get("staging-web").await.expect("staging-web");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:3.1"), "tag= on the workload");
    assert_eq!(env_value(&web, "SERVICE_TAG").as_deref(), Some("canary"), "the earlier call's variable persists");
    assert_eq!(app.status.as_ref().and_then(|s| s.image_tag.clone()).as_deref(), Some("3.1"));
    assert_eq!(restarted_at(&web), None);

    let app = call_and_wait(&f, "staging", &format!("{path}?rollout-restart=deployment/staging-web")).await;
    let web = deployments.get("staging-web").await.expect("staging-web");
    assert!(restarted_at(&web).is_some(), "restartedAt set on the pod template");
    let restarted = app.status.as_ref().and_then(|s| s.deployments.last()).map(|d| d.restarted.clone());
    assert_eq!(restarted.map(|r| r.len()), Some(1), "one workload restarted");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:3.1"), "the tag persists");

    let text = scrape(&f).await;
    assert_eq!(builds(&text, "kustomize", "succeeded"), 1.0, "variables are substituted after the build: {text}");
    assert_eq!(builds(&text, "kustomize", "failed"), 0.0);
}

// ---------------------------------------------------------------------------------------------
// 3. Helm
// ---------------------------------------------------------------------------------------------

/// The helm-shop chart with a release name, a values file and inline values holding
/// `${SERVICE_TAG:-…}`: `.Release.Name` and `.Release.Namespace`, the values file's replicas
/// and mode, the vendored subchart. A call `?SERVICE_TAG=canary` fills the values before
/// templating (the image tag comes out of the chart), then `tag=` and `rollout-restart=`.
#[tokio::test]
async fn a_helm_chart_deploys_with_its_values_and_webhook_calls_fill_them_before_templating() {
    let files = fixture("helm-shop", "");
    let Some(f) = Fixture::start("helm", &as_files(&files), &[]).await else { return };
    let sha = f.head();
    let helm = json!({
        "releaseName": "storefront",
        "valuesFiles": ["values-prod.yaml"],
        "values": {"image": {"tag": "${SERVICE_TAG:-1.0}"}, "serviceTag": "${SERVICE_TAG:-stable}"},
    });
    f.create_app("shop", spec_at(&f, "chart", json!({"source": {"helm": helm}}))).await;
    let app = f.wait_app("shop", "Ready at the pushed revision", |a| is_ready_at(a, &sha)).await;
    // The hook Job (migrate) is not looked at: hooks are tested elsewhere.
    let objects: Vec<String> = inventory(&app).into_iter().filter(|o| !o.starts_with("Job/")).collect();
    assert_eq!(
        objects,
        [
            "ConfigMap/storefront-cache",
            "ConfigMap/storefront-shop",
            "Deployment/storefront-cache",
            "Deployment/storefront-shop",
            "Service/storefront-shop"
        ]
    );

    let deployments: Api<Deployment> = api(&f);
    let config_maps: Api<ConfigMap> = api(&f);
    let services: Api<Service> = api(&f);
    let cm = config_maps.get("storefront-shop").await.expect("ConfigMap storefront-shop");
    assert_eq!(data(&cm, "RELEASE").as_deref(), Some("storefront"), ".Release.Name is releaseName");
    assert_eq!(data(&cm, "RELEASE_NAMESPACE").as_deref(), Some(f.ns.name.as_str()), ".Release.Namespace");
    assert_eq!(data(&cm, "MODE").as_deref(), Some("prod"), "from values-prod.yaml");
    assert_eq!(data(&cm, "SERVICE_TAG").as_deref(), Some("stable"), "inline value, placeholder default");
    assert_eq!(label(&cm.metadata, "helm.sh/chart").as_deref(), Some("shop-0.1.0"));
    let web = deployments.get("storefront-shop").await.expect("Deployment storefront-shop");
    assert_eq!(web.spec.as_ref().and_then(|s| s.replicas), Some(3), "replicas from values-prod.yaml");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:1.0"), "inline values over values.yaml");
    assert_eq!(label(&web.metadata, "app.kubernetes.io/instance").as_deref(), Some("storefront"));
    let cache = deployments.get("storefront-cache").await.expect("the subchart's Deployment");
    assert_eq!(image(&cache).as_deref(), Some("registry.example.com/cache:7.2"));
    let cache_cm = config_maps.get("storefront-cache").await.expect("the subchart's ConfigMap");
    assert_eq!(data(&cache_cm, "maxmemory").as_deref(), Some("64mb"));
    assert!(services.get("storefront-shop").await.is_ok());
    let text = scrape(&f).await;
    // Twice: the values, and once with markers to learn which values reach names (none here).
    assert_eq!(builds(&text, "helm", "succeeded"), 2.0, "{text}");

    let path = f.create_webhook("deploy", json!({"targets": [{"name": "shop"}]})).await;
    // SERVICE_TAG is only in the values: a call may set it all the same.
    let app = call_and_wait(&f, "shop", &format!("{path}?SERVICE_TAG=canary")).await;
    let web = deployments.get("storefront-shop").await.expect("storefront-shop");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:canary"), "values filled before templating");
    assert_eq!(web.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let cm = config_maps.get("storefront-shop").await.expect("storefront-shop");
    assert_eq!(data(&cm, "SERVICE_TAG").as_deref(), Some("canary"));
    assert_eq!(data(&cm, "RELEASE").as_deref(), Some("storefront"));
    assert_eq!(app.status.as_ref().and_then(|s| s.variables.get("SERVICE_TAG")).map(String::as_str), Some("canary"));
    let text = scrape(&f).await;
    assert_eq!(builds(&text, "helm", "succeeded"), 3.0, "new values, one new helm template: {text}");

    let _ = call_and_wait(&f, "shop", &format!("{path}?tag=2.5")).await;
    let web = deployments.get("storefront-shop").await.expect("storefront-shop");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:2.5"), "tag= on the chart's workload");
    assert_eq!(restarted_at(&web), None);

    let app = call_and_wait(&f, "shop", &format!("{path}?rollout-restart=deployment/storefront-shop")).await;
    let web = deployments.get("storefront-shop").await.expect("storefront-shop");
    assert!(restarted_at(&web).is_some(), "restartedAt set on the pod template");
    let cache = deployments.get("storefront-cache").await.expect("storefront-cache");
    assert_eq!(restarted_at(&cache), None, "only the named workload restarts");
    let restarted = app.status.as_ref().and_then(|s| s.deployments.last()).map(|d| d.restarted.clone());
    assert_eq!(restarted.map(|r| r.len()), Some(1));
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:2.5"), "the tag persists");
}

/// A variable of the Helm values that the chart puts into a name is refused to calls (as for
/// plain manifests, a call never chooses which objects an application writes); one that only
/// reaches data is accepted.
#[tokio::test]
async fn a_helm_value_that_names_an_object_is_never_set_by_a_call() {
    let files = [
        ("chart/Chart.yaml", "apiVersion: v2\nname: named\nversion: 0.1.0\n".to_owned()),
        ("chart/values.yaml", "name: web\ntag: \"1\"\n".to_owned()),
        (
            "chart/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name | lower }}-settings\ndata:\n  tag: {{ .Values.tag | quote }}\n".to_owned(),
        ),
    ];
    let Some(f) = Fixture::start("helm-names", &files, &[]).await else { return };
    let sha = f.head();
    let helm = json!({"values": {"name": "${NAME:-web}", "tag": "${TAG:-1}"}});
    f.create_app("named", spec_at(&f, "chart", json!({"source": {"helm": helm}}))).await;
    let app = f.wait_app("named", "Ready", |a| is_ready_at(a, &sha)).await;
    let names = app.status.map(|s| s.variable_names).unwrap_or_default();
    assert_eq!(names, ["TAG"], "NAME reaches metadata.name through the template, so no call may set it");
    let path = f.create_webhook("deploy", json!({"targets": [{"name": "named"}]})).await;
    let refused = post(f.operator.trigger_port, &format!("{path}?NAME=other"), &[], b"").await;
    assert_eq!(refused.status, 400, "{refused:?}");
    let _ = call_and_wait(&f, "named", &format!("{path}?TAG=2")).await;
    let config_maps: Api<ConfigMap> = api(&f);
    let settings = config_maps.get("web-settings").await.expect("the same object");
    assert_eq!(data(&settings, "tag").as_deref(), Some("2"));

    // A value that a template would paste into YAML as structure (a quote, a newline, a new
    // document): accepted as a call (TAG is declared), refused before anything is applied.
    let hostile = "2%22%0A---%0AapiVersion%3A%20v1%0Akind%3A%20Secret%0Ametadata%3A%20%7Bname%3A%20x%7D";
    let reply = post(f.operator.trigger_port, &format!("{path}?TAG={hostile}"), &[], b"").await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let app = f
        .wait_app("named", "Ready=False VariableNotAllowed", |a| {
            ready(a).is_some_and(|(status, reason, _)| status == "False" && reason == "VariableNotAllowed")
        })
        .await;
    let (_, _, message) = ready(&app).expect("ready");
    assert!(message.contains("variable TAG") && message.contains("fills a Helm value"), "{message}");
    let secrets: Api<Secret> = api(&f);
    assert!(secrets.get_opt("x").await.expect("read").is_none(), "nothing injected");
    assert_eq!(data(&config_maps.get("web-settings").await.expect("cm"), "tag").as_deref(), Some("2"));
    let dropped = app.status.map(|s| s.variables).unwrap_or_default();
    assert!(!dropped.contains_key("TAG"), "the call's value is dropped: {dropped:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. Caching
// ---------------------------------------------------------------------------------------------

/// A reconcile that changes nothing takes the cached output: no kustomize or helm process.
/// Applications sharing repository, revision, path and inputs build once.
#[tokio::test]
async fn a_reconcile_that_changes_nothing_runs_no_build_tool() {
    let mut files = fixture("kustomize-shop", "");
    files.extend(fixture("helm-shop", ""));
    let Some(f) = Fixture::start("build-cache", &as_files(&files), &[]).await else { return };
    let sha = f.head();
    f.create_app("staging", spec_at(&f, "overlays/staging", json!({}))).await;
    let helm = json!({"releaseName": "shop", "values": {"image": {"tag": "${SERVICE_TAG:-1.0}"}}});
    f.create_app("chart", spec_at(&f, "chart", json!({"source": {"helm": helm}}))).await;
    for name in ["staging", "chart"] {
        f.wait_app(name, "Ready", |a| is_ready_at(a, &sha)).await;
    }
    let before = scrape(&f).await;
    assert_eq!(builds(&before, "kustomize", "succeeded"), 1.0, "{before}");
    // The values, and once with markers (which values reach names).
    assert_eq!(builds(&before, "helm", "succeeded"), 2.0, "{before}");
    let reconciles = sample(&before, "tugboat_reconciles_total{result=\"success\"}");

    // A reconcile request goes through the whole pipeline (fetch check, build, plan, apply).
    let at = "2030-01-01T00:00:00Z";
    let annotate = json!({"metadata": {"annotations": {"tugboat.dev/reconcile-requested-at": at}}});
    for name in ["staging", "chart"] {
        f.apps().patch(name, &PatchParams::default(), &Patch::Merge(&annotate)).await.expect("request a reconcile");
    }
    for name in ["staging", "chart"] {
        f.wait_app(name, "the reconcile request handled", |a| {
            a.status.as_ref().and_then(|s| s.last_handled_reconcile_at.as_deref()) == Some(at) && is_ready_at(a, &sha)
        })
        .await;
    }
    let after = f
        .eventually("two more successful reconciles", || async {
            let text = scrape(&f).await;
            (sample(&text, "tugboat_reconciles_total{result=\"success\"}") >= reconciles + 2.0).then_some(text)
        })
        .await;
    assert_eq!(builds(&after, "kustomize", "succeeded"), 1.0, "the reconcile took kustomize's cached output: {after}");
    assert_eq!(builds(&after, "helm", "succeeded"), 2.0, "the reconcile took helm's cached output: {after}");

    // A second application of the same overlay at the same revision, into another namespace:
    // the same inputs as far as kustomize is concerned (it never sees the namespace or the
    // application's name).
    let other = support::cluster::TestNamespace::create(&f.client, "build-cache-b").await;
    support::restricted::allow_deploys(&f.client, &f.ns.name, &other.name).await;
    f.create_app("staging-copy", spec_at(&f, "overlays/staging", json!({"targetNamespace": other.name}))).await;
    f.wait_app("staging-copy", "Ready", |a| is_ready_at(a, &sha)).await;
    let copied: Api<ConfigMap> = Api::namespaced(f.client.clone(), &other.name);
    let settings = copied.get("staging-settings-t6k9ftg69d").await.expect("the copy's generated ConfigMap");
    assert_eq!(data(&settings, "TAG").as_deref(), Some("stable"));
    let text = scrape(&f).await;
    assert_eq!(
        builds(&text, "kustomize", "succeeded"),
        1.0,
        "a second application of the same overlay, revision and inputs builds nothing: {text}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Build failures
// ---------------------------------------------------------------------------------------------

/// A broken kustomization, a failing template, a missing dependency chart and a self-including
/// template: Ready=False BuildFailed with the tool's own words (cut short when long), nothing
/// applied. A broken commit on applications that were Ready leaves their previous revision live.
#[tokio::test]
async fn build_failures_say_what_the_tool_said_and_keep_the_previous_revision_live() {
    let mut files = fixture("kustomize-shop", "shop");
    files.extend(fixture("helm-shop", "helm-shop"));
    files.extend(fixture("hostile/kustomize-broken", "kustomize-broken"));
    files.extend(fixture("hostile/helm-broken", "helm-broken"));
    files.extend(fixture("helm-missing-dependency", "missing-dependency"));
    files.extend(fixture("hostile/helm-recursion", "helm-recursion"));
    let Some(f) = Fixture::start("build-fail", &as_files(&files), &[]).await else { return };
    let first = f.head();
    f.create_app("good-kustomize", spec_at(&f, "shop/overlays/prod", json!({}))).await;
    f.create_app("good-helm", spec_at(&f, "helm-shop/chart", json!({"source": {"helm": {"releaseName": "shop"}}})))
        .await;
    f.create_app("kustomize-broken", spec_at(&f, "kustomize-broken", json!({}))).await;
    f.create_app("helm-broken", spec_at(&f, "helm-broken/chart", json!({}))).await;
    f.create_app("missing-dependency", spec_at(&f, "missing-dependency/chart", json!({}))).await;
    f.create_app("recursion", spec_at(&f, "helm-recursion/chart", json!({}))).await;

    let message = build_failed(&f, "kustomize-broken").await;
    assert!(message.contains("kustomize failed: "), "{message}");
    assert!(message.contains("no resource matches strategic merge patch") && message.contains("api"), "{message}");
    let message = build_failed(&f, "helm-broken").await;
    assert!(message.contains("helm failed: "), "{message}");
    assert!(message.contains("templates/configmap.yaml:7"), "names the file and line: {message}");
    assert!(message.contains("nosuchfunc"), "{message}");
    let message = build_failed(&f, "missing-dependency").await;
    assert!(message.contains("helm failed: ") && message.contains("redis"), "names the dependency: {message}");
    let recursion = build_failed(&f, "recursion").await;

    for name in ["kustomize-broken", "helm-broken", "missing-dependency", "recursion"] {
        let app = f.apps().get(name).await.expect("app");
        let status = app.status.as_ref().expect("status");
        assert!(status.inventory.is_empty() && status.last_applied_revision.is_none(), "{name}: nothing applied");
        assert_eq!(status.last_attempted_revision, Some(format!("main@sha1:{first}")));
    }
    let deployments: Api<Deployment> = api(&f);
    let config_maps: Api<ConfigMap> = api(&f);
    assert!(deployments.get_opt("web").await.expect("get").is_none(), "kustomize-broken applied nothing");
    for absent in ["helm-broken-broken", "missing-dependency-app", "recursion-recursion"] {
        assert!(config_maps.get_opt(absent).await.expect("get").is_none(), "{absent} not applied");
    }

    f.wait_app("good-kustomize", "Ready", |a| is_ready_at(a, &first)).await;
    f.wait_app("good-helm", "Ready", |a| is_ready_at(a, &first)).await;

    // A broken commit for both good applications (with a change that would show if applied).
    let overlay = files.iter().find(|(p, _)| p == "shop/overlays/prod/kustomization.yaml").expect("prod overlay");
    // A patch of a Deployment the overlay does not have (as hostile/kustomize-broken).
    let missing = "patches:\n  - patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata:\n        name: missing\n      spec:\n        replicas: 9\n";
    let broken_overlay = overlay.1.replace("newTag: \"2.0\"", "newTag: \"2.1\"").replacen("patches:\n", missing, 1);
    assert!(broken_overlay.contains("name: missing") && broken_overlay.contains("2.1"), "{broken_overlay}");
    let broken_service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ include \"shop.fullname\" . }}\n  labels:\n    changed: {{ .Values.mode | nosuchfunc }}\nspec:\n  ports: [{port: 80}]\n";
    let second = f.commit(
        &[
            ("shop/overlays/prod/kustomization.yaml", Some(&broken_overlay)),
            ("helm-shop/chart/templates/service.yaml", Some(broken_service)),
        ],
        "break the overlay and the chart",
    );
    f.request_reconcile("good-kustomize").await;
    f.request_reconcile("good-helm").await;
    for (name, tool, names) in [
        ("good-kustomize", "kustomize failed: ", "Deployment.v1.apps/missing"),
        ("good-helm", "helm failed: ", "templates/service.yaml:6"),
    ] {
        let app = f
            .wait_app(name, "Ready=False BuildFailed at the broken commit", |a| {
                a.status.as_ref().and_then(|s| s.last_attempted_revision.clone()) == Some(format!("main@sha1:{second}"))
                    && ready(a).is_some_and(|(s, r, _)| s == "False" && r == "BuildFailed")
            })
            .await;
        let (_, _, message) = ready(&app).expect("Ready");
        assert!(message.starts_with(&format!("revision main@sha1:{second}: {tool}")), "{name}: {message}");
        assert!(message.contains(names), "{name}: {message}");
        let status = app.status.expect("status");
        assert_eq!(status.last_applied_revision, Some(format!("main@sha1:{first}")), "{name}: previous revision live");
        assert!(!status.inventory.is_empty(), "{name}: the inventory is kept");
    }
    let web = deployments.get("prod-web").await.expect("prod-web still there");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:2.0"), "nothing of the broken commit applied");
    assert!(deployments.get("shop").await.is_ok(), "the chart's Deployment is still live");
    let services: Api<Service> = api(&f);
    let service = services.get("shop").await.expect("the chart's Service is still live");
    assert_eq!(label(&service.metadata, "changed"), None);

    // helm prints 131 KB here: its first words are kept, the rest is read and dropped.
    assert!(recursion.contains("recursion.self"), "helm's message, cut short: {recursion}");
    assert!(recursion.len() < 2_000, "helm's 131 KB message is cut short: {} bytes", recursion.len());
}

// ---------------------------------------------------------------------------------------------
// 6. Hostile sources
// ---------------------------------------------------------------------------------------------

/// Kustomizations that reach outside the repository (a resource, a generator's file, a base),
/// a remote base, an exec plugin, kustomize's Helm inflator; charts that loop forever, print
/// 130 MB or link to a host file. Each is refused or cut with a clear message, nothing is
/// applied, and the operator stays up: another application deploys afterwards.
#[tokio::test]
async fn hostile_kustomizations_and_charts_are_refused_and_the_operator_keeps_running() {
    // The repository of kustomize-escape-base is its repo/ directory: it is the root here,
    // with outside/ left out (it stands for files beside the checkout).
    let mut files = fixture("hostile/kustomize-escape-base/repo", "");
    files.extend(fixture("hostile/kustomize-escape", "escape"));
    files.extend(fixture("hostile/kustomize-escape-file", "escape-file"));
    files.extend(fixture("hostile/kustomize-remote", "remote"));
    files.extend(fixture("hostile/kustomize-exec-plugin", "exec-plugin"));
    files.extend(fixture("hostile/kustomize-helm-charts", "helm-charts"));
    files.extend(fixture("hostile/helm-loop", "helm-loop"));
    files.extend(fixture("hostile/helm-huge", "helm-huge"));
    files.extend(fixture("hostile/helm-symlink", "helm-symlink"));
    files.extend(fixture("kustomize-shop", "shop"));
    let flags = ["--render-timeout", "10s", "--render-max-bytes", "8Mi"];
    let Some(mut f) = Fixture::start("build-hostile", &as_files(&files), &flags).await else { return };
    // The fixture's link to /etc/hostname, committed as a link (as Git stores it).
    let target = std::fs::read_link(fixture_dir("hostile/helm-symlink/chart/files/hostname")).expect("the link");
    let link = f.work.path().join("helm-symlink/chart/files/hostname");
    std::fs::create_dir_all(link.parent().expect("parent")).expect("files/");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let sha = f.commit(&[], "a link to the host's /etc/hostname");

    let started = std::time::Instant::now();
    let cases = [
        ("escape", "escape/app"),
        ("escape-file", "escape-file/app"),
        ("escape-base", "app"),
        ("remote", "remote"),
        ("exec-plugin", "exec-plugin"),
        ("helm-charts", "helm-charts"),
        ("helm-loop", "helm-loop/chart"),
        ("helm-huge", "helm-huge/chart"),
        ("helm-symlink", "helm-symlink/chart"),
    ];
    for (name, path) in cases {
        f.create_app(name, spec_at(&f, path, json!({}))).await;
    }

    let message = build_failed(&f, "escape").await;
    assert!(
        message.contains("escape/app/kustomization.yaml: resources: \"../../../../../../../../../../../../etc\" leads outside the repository"),
        "names the kustomization and the field: {message}"
    );
    let message = build_failed(&f, "escape-file").await;
    assert!(
        message.contains("escape-file/app/kustomization.yaml: configMapGenerator: ")
            && message.contains("etc/hostname\" leads outside the repository"),
        "names the kustomization and the field: {message}"
    );
    let message = build_failed(&f, "escape-base").await;
    assert!(
        message.contains("app/kustomization.yaml: resources: \"../../outside\" leads outside the repository"),
        "{message}"
    );
    let message = build_failed(&f, "remote").await;
    assert!(
        message.contains("remote/kustomization.yaml: resources: \"https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v1.0.6\": remote bases are not allowed (the operator's --allow-remote-bases)"),
        "{message}"
    );
    let message = build_failed(&f, "exec-plugin").await;
    assert!(message.contains("kustomize failed: ") && message.contains("external plugins disabled"), "{message}");
    let message = build_failed(&f, "helm-charts").await;
    assert!(message.contains("kustomize failed: ") && message.contains("--enable-helm"), "{message}");
    // The loop stops at the render deadline, or earlier at the memory limit (the garbage of
    // its `until` lists outgrows --build-max-memory when the GC falls behind, under load).
    let message = build_failed(&f, "helm-loop").await;
    assert!(
        message.ends_with("helm did not finish within 10s (--render-timeout)") || killed_for_memory(&message),
        "says why the render was cut: {message}"
    );
    assert!(message.len() < 2_000, "cut short: {} bytes", message.len());
    // 130 MB of output: killed at the memory limit, at the output cap or at the deadline,
    // depending on the machine's speed.
    let message = build_failed(&f, "helm-huge").await;
    assert!(
        killed_for_memory(&message)
            || message.ends_with("helm printed more than 8388608 bytes (--render-max-bytes); nothing was applied")
            || message.ends_with("helm did not finish within 10s (--render-timeout)"),
        "says why the render was cut: {message}"
    );
    assert!(message.len() < 2_000, "helm's goroutine dump is cut short: {} bytes", message.len());
    eprintln!("the hostile builds were judged within {:?}", started.elapsed());

    // The link is left out of the checkout: the host's file never reaches the cluster.
    let config_maps: Api<ConfigMap> = api(&f);
    f.wait_app("helm-symlink", "Ready, built without the link", |a| is_ready_at(a, &sha)).await;
    let stolen = config_maps.get("helm-symlink-stolen").await.expect("the chart's ConfigMap");
    let value = data(&stolen, "hostname").expect("data.hostname");
    assert_eq!(value, "", "files/hostname is not in the checkout: .Files.Get finds nothing");
    let host = std::fs::read_to_string(&target).unwrap_or_default();
    assert!(host.trim().is_empty() || !value.contains(host.trim()), "the host's file leaked: {value:?}");

    // Nothing of the hostile ones was applied.
    for (name, _) in cases.iter().filter(|(name, _)| *name != "helm-symlink") {
        let app = f.apps().get(name).await.expect("app");
        assert!(app.status.as_ref().is_some_and(|s| s.inventory.is_empty()), "{name}: nothing applied");
    }
    let secrets: Api<Secret> = api(&f);
    assert!(secrets.get_opt("stolen").await.expect("get").is_none(), "the base outside was never built");
    let services: Api<Service> = api(&f);
    assert!(services.get_opt("inside").await.expect("get").is_none(), "a refused build applies nothing of it");
    for absent in ["pwned", "stolen", "helm-loop-never", "helm-huge-huge"] {
        assert!(config_maps.get_opt(absent).await.expect("get").is_none(), "{absent} not applied");
    }

    // The operator is alive, ready, and still deploys.
    assert!(f.operator.exited().is_none(), "the operator is still running");
    let readyz = request(f.operator.probe_port, "GET", "/readyz", &[], b"").await;
    assert_eq!(readyz.status, 200, "{readyz:?}");
    f.create_app("after", spec_at(&f, "shop/overlays/prod", json!({}))).await;
    f.wait_app("after", "Ready after the hostile builds", |a| is_ready_at(a, &sha)).await;
    let text = scrape(&f).await;
    assert!(builds(&text, "helm", "failed") >= 2.0, "the loop and the huge chart count as failed runs: {text}");
    // The tools' memory is theirs (a process each, limited); the operator only ever holds at
    // most --render-max-bytes (8 MiB here) of a tool's output.
    let (peak, current) = f.operator.memory_kib().expect("the operator's /proc status");
    eprintln!("operator memory: peak {peak} KiB, now {current} KiB");
    assert!(peak < 200 * 1024, "the operator stays far below the chart's 512 MiB limit: peak {peak} KiB");
}

/// With `--allow-remote-bases`, a remote base is fetched by kustomize, but only from a host the
/// Git egress guard admits: a base on a cloud metadata address is refused before kustomize
/// runs, and nothing is applied.
#[tokio::test]
async fn an_allowed_remote_base_must_pass_the_git_egress_guard() {
    let files = [
        (
            "app/kustomization.yaml",
            "resources:\n  - https://169.254.169.254/team/base.git//deploy?ref=main\n  - cm.yaml\n".to_owned(),
        ),
        ("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local\n".to_owned()),
    ];
    let Some(f) = Fixture::start("remote-base", &files, &["--allow-remote-bases"]).await else { return };
    f.create_app("remote", spec_at(&f, "app", json!({}))).await;
    let app = f
        .wait_app("remote", "Ready=False BuildFailed", |a| {
            ready(a).is_some_and(|(status, reason, _)| status == "False" && reason == "BuildFailed")
        })
        .await;
    let (_, _, message) = ready(&app).expect("Ready");
    assert!(
        message.contains("169.254.169.254") && message.contains("the Git egress guard"),
        "refused by the guard, before kustomize ran: {message}"
    );
    let text = scrape(&f).await;
    assert_eq!(builds(&text, "kustomize", "succeeded") + builds(&text, "kustomize", "failed"), 0.0, "{text}");
    let config_maps: Api<ConfigMap> = api(&f);
    assert!(config_maps.get_opt("local").await.expect("read").is_none(), "nothing applied");
}
