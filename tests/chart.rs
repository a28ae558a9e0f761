//! The Helm chart: `helm lint`, `helm template | kubeconform -strict` (schemas from the test API
//! server and the CRDs) for several value sets, and `helm install` into the test control plane.

mod support;

use std::path::PathBuf;
use std::process::Command;

use kube::api::{Api, DynamicObject};
use kube::discovery::Discovery;
use serde_json::Value;

use support::cluster::{self, TestNamespace, kubeconfig_path, testenv_tool};
use support::git_repo::TempDir;

/// Value sets the chart must render validly with (each a list of `--set` arguments).
const VALUE_SETS: &[&[&str]] = &[
    &[],
    &[
        "rbac.scope=namespace",
        "ingress.enabled=true",
        "ingress.tls[0].secretName=tls",
        "ingress.tls[0].hosts[0]=a.example.com",
    ],
    &[
        "rbac.deployRules=null",
        "rbac.impersonation=false",
        "tenancy.applyAsOperator=true",
        "leaderElection.enabled=false",
        "serviceAccount.create=false",
    ],
    &["tenancy.namespaces[0]=team-a", "tenancy.namespaces[1]=team-b", "tenancy.defaultServiceAccount=deployer"],
    &[
        "serviceMonitor.enabled=true",
        "operator.egressAllow[0]=10.96.0.0/12",
        "operator.trustedProxies[0]=10.244.0.0/16",
        "operator.trustedProxies[1]=fd00::/8",
        "operator.gitEgressAllow[0]=169.254.20.10/32",
        "operator.gitEgressDenyPrivate=true",
        "cache.maxBytes=0",
        "operator.defaultChangeWindows[0]=allow;0 22 * * 1-5;4h;Europe/Berlin",
        "replicaCount=2",
    ],
];

fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/tugboat")
}

/// A testenv tool, or `None` (with a message) when the chart tools were not built and no CI asks for them.
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{command:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn template(helm: &PathBuf, release: &str, namespace: &str, sets: &[&str]) -> String {
    let mut command = Command::new(helm);
    command.args(["template", release]).arg(chart_dir()).args(["--namespace", namespace, "--kube-version", "1.35.0"]);
    command.arg("--include-crds");
    for set in sets {
        command.args(["--set", set]);
    }
    run(&mut command)
}

#[test]
fn chart_crds_are_the_generated_ones() {
    for (file, crd) in tugboat::crds::all() {
        let expected = tugboat::crds::to_yaml(&crd).expect("CRD YAML");
        let path = chart_dir().join("crds").join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == expected, "{} differs from the types: run `make crds`", path.display());
    }
}

#[test]
fn helm_lint_is_clean() {
    let Some(helm) = testenv_tool("helm") else { return };
    for sets in VALUE_SETS {
        let mut command = Command::new(&helm);
        command.args(["lint", "--strict", "--kube-version", "1.35.0"]).arg(chart_dir());
        for set in *sets {
            command.args(["--set", set]);
        }
        let out = run(&mut command);
        assert!(out.contains("0 chart(s) failed"), "{out}");
        assert!(!out.contains("[WARNING]") && !out.contains("[ERROR]"), "{out}");
    }
}

#[test]
fn values_schema_refuses_a_bad_value_naming_it() {
    let Some(helm) = testenv_tool("helm") else { return };
    let output = Command::new(&helm)
        .args(["template", "t"])
        .arg(chart_dir())
        .args(["--kube-version", "1.35.0", "--set", "rbac.scope=everywhere"])
        .output()
        .expect("helm");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rbac/scope"), "{stderr}");
}

#[tokio::test]
async fn rendered_chart_passes_kubeconform_strict() {
    let (Some(helm), Some(kubeconform)) = (testenv_tool("helm"), testenv_tool("kubeconform")) else { return };
    let Some(client) = cluster::client().await else { return };
    let dir = TempDir::new("tugboat-schemas").expect("temp dir");
    let location = support::schemas::write_all(&client, &dir.path().join("schemas")).await;
    // The schemas are strict: an unknown field in a core kind and in a CRD kind is refused.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {portz: []}\n---\n\
         apiVersion: tugboat.dev/v1alpha1\nkind: Webhook\nmetadata: {name: b}\nspec: {provider: generic, targetz: []}\n",
    )
    .expect("write");
    let output =
        Command::new(&kubeconform).args(["-strict", "-summary", "-schema-location", &location]).arg(&bad).output();
    let text = String::from_utf8_lossy(&output.expect("kubeconform").stdout).into_owned();
    assert!(text.contains("Invalid: 2"), "{text}");
    for (index, sets) in VALUE_SETS.iter().enumerate() {
        let manifest = dir.path().join(format!("chart-{index}.yaml"));
        std::fs::write(&manifest, template(&helm, "tugboat", "tugboat-system", sets)).expect("write manifest");
        let output = Command::new(&kubeconform)
            .args(["-strict", "-summary", "-output", "text", "-schema-location", &location])
            // The Prometheus Operator's CRD is not in the test cluster: the one kind checked elsewhere.
            .args(["-skip", "ServiceMonitor"])
            .arg(&manifest)
            .output()
            .expect("kubeconform");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "values {sets:?}:\n{text}{}", String::from_utf8_lossy(&output.stderr));
        assert!(text.contains("Invalid: 0, Errors: 0"), "{text}");
    }
}

#[test]
fn service_monitor_selects_the_metrics_service() {
    let Some(helm) = testenv_tool("helm") else { return };
    let docs = documents(&template(&helm, "t", "ops", &["serviceMonitor.enabled=true"]));
    let monitor = docs.iter().find(|d| d["kind"] == "ServiceMonitor").expect("ServiceMonitor");
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "t-tugboat-metrics")
        .expect("metrics Service");
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().expect("selector");
    for (key, value) in selector {
        assert_eq!(&service["metadata"]["labels"][key], value, "label {key}");
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
}

#[test]
fn namespaced_scope_uses_roles_and_watches_one_namespace() {
    let Some(helm) = testenv_tool("helm") else { return };
    let docs = documents(&template(&helm, "t", "ops", &["rbac.scope=namespace", "rbac.watchNamespace=shop"]));
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert!(!kinds.contains(&"ClusterRole") && !kinds.contains(&"ClusterRoleBinding"), "{kinds:?}");
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().expect("env");
    assert!(env.iter().any(|e| e["name"] == "TUGBOAT_NAMESPACE" && e["value"] == "shop"), "{env:?}");
    let role = docs.iter().find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "t-tugboat").expect("Role");
    assert_eq!(role["metadata"]["namespace"], "shop");
}

#[test]
fn tenants_get_their_account_and_the_operator_deploys_nothing_with_its_own_rights() {
    let Some(helm) = testenv_tool("helm") else { return };
    let named = |docs: &[Value], kind: &str, name: &str, namespace: Option<&str>| {
        docs.iter()
            .find(|d| {
                d["kind"] == kind && d["metadata"]["name"] == name && d["metadata"]["namespace"].as_str() == namespace
            })
            .cloned()
    };
    // Defaults: the deployer rules exist for tenants, bound to nobody; the operator acts as
    // each application's account.
    let docs = documents(&template(&helm, "t", "ops", &[]));
    assert!(named(&docs, "ClusterRole", "t-tugboat-deployer", None).is_some());
    assert!(
        named(&docs, "ClusterRoleBinding", "t-tugboat-deployer", None).is_none(),
        "no deploy rights for the operator"
    );
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().expect("env");
    assert!(env.iter().any(|e| e["name"] == "TUGBOAT_DEFAULT_SERVICE_ACCOUNT" && e["value"] == "tugboat-deployer"));
    assert!(!env.iter().any(|e| e["name"] == "TUGBOAT_APPLY_AS_OPERATOR"), "{env:?}");

    // Prepared tenants: the account and a RoleBinding to the deployer rules, in each namespace.
    let docs =
        documents(&template(&helm, "t", "ops", &["tenancy.namespaces[0]=team-a", "tenancy.namespaces[1]=team-b"]));
    for tenant in ["team-a", "team-b"] {
        assert!(named(&docs, "ServiceAccount", "tugboat-deployer", Some(tenant)).is_some(), "{tenant}");
        let binding = named(&docs, "RoleBinding", "t-tugboat-deployer", Some(tenant)).expect("RoleBinding");
        assert_eq!(binding["roleRef"]["name"], "t-tugboat-deployer");
        assert_eq!(binding["subjects"][0]["namespace"], tenant, "the tenant's own account");
    }

    // The single-team opt-out binds the rules to the operator and says so to the process.
    let docs = documents(&template(&helm, "t", "ops", &["tenancy.applyAsOperator=true"]));
    let binding = named(&docs, "ClusterRoleBinding", "t-tugboat-deployer", None).expect("binding");
    assert_eq!(binding["subjects"][0]["name"], "t-tugboat");
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().expect("env");
    assert!(env.iter().any(|e| e["name"] == "TUGBOAT_APPLY_AS_OPERATOR" && e["value"] == "true"), "{env:?}");

    // No impersonation means no tenancy: refused unless the opt-out is explicit.
    let refused = Command::new(&helm)
        .args(["template", "t"])
        .arg(chart_dir())
        .args(["--kube-version", "1.35.0", "--set", "rbac.impersonation=false"])
        .output()
        .expect("helm");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("tenancy.applyAsOperator"));
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|doc| doc.is_object())
        .collect()
}

#[tokio::test]
async fn helm_install_creates_every_object() {
    let Some(helm) = testenv_tool("helm") else { return };
    let Some(client) = cluster::client().await else { return };
    cluster::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "chart").await;
    let release = format!("tb-{:06x}", cluster::rand_u32() & 0xff_ffff);
    let helm_args = |command: &mut Command| {
        command.arg("--kubeconfig").arg(kubeconfig_path()).args(["--namespace", &ns.name]);
    };
    let mut install = Command::new(&helm);
    install.args(["install", &release]).arg(chart_dir()).args(["--set", "ingress.enabled=true"]);
    helm_args(&mut install);
    let out = run(&mut install);
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(out.contains("kubectl get webhook NAME"), "NOTES tell how to get a webhook URL: {out}");

    let mut get = Command::new(&helm);
    get.args(["get", "manifest", &release]);
    helm_args(&mut get);
    let manifest = run(&mut get);
    let objects = documents(&manifest);
    assert!(objects.len() >= 10, "{manifest}");
    let discovery = Discovery::new(client.clone()).run().await.expect("discovery");
    let mut missing = Vec::new();
    for object in &objects {
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let kind = object["kind"].as_str().expect("kind");
        let name = object["metadata"]["name"].as_str().expect("name");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = discovery.resolve_gvk(&gvk).expect("kind served");
        let api: Api<DynamicObject> = if capabilities.scope == kube::discovery::Scope::Namespaced {
            Api::namespaced_with(
                client.clone(),
                object["metadata"]["namespace"].as_str().unwrap_or(&ns.name),
                &resource,
            )
        } else {
            Api::all_with(client.clone(), &resource)
        };
        if api.get_opt(name).await.expect("get").is_none() {
            missing.push(format!("{kind}/{name}"));
        }
    }
    let mut uninstall = Command::new(&helm);
    uninstall.args(["uninstall", &release, "--wait"]);
    helm_args(&mut uninstall);
    run(&mut uninstall);
    assert!(missing.is_empty(), "objects not created: {missing:?}");
}

/// Every setting the chart passes to the container is one `tugboat run` knows (clap ignores
/// unknown environment variables, so a misspelt one would silently do nothing).
#[test]
fn the_chart_passes_only_settings_tugboat_run_knows() {
    let Some(helm) = testenv_tool("helm") else { return };
    let help = run(Command::new(env!("CARGO_BIN_EXE_tugboat")).args(["run", "--help"]));
    for sets in VALUE_SETS {
        let docs = documents(&template(&helm, "t", "ops", sets));
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        for env in container["env"].as_array().expect("env") {
            let name = env["name"].as_str().expect("env name");
            if name.starts_with("TUGBOAT_") {
                assert!(help.contains(&format!("[env: {name}")), "{name} is not a `tugboat run` setting");
            }
        }
        let args: Vec<&str> = container["args"].as_array().expect("args").iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(args.first(), Some(&"run"), "{args:?}");
        for flag in args.iter().skip(1) {
            let name = flag.split('=').next().unwrap_or_default();
            assert!(help.contains(&format!("{name} ")) || help.contains(&format!("{name} <")), "{name} is not a flag");
        }
    }
}
