//! The CRDs install on the real API server, which refuses invalid objects with messages naming the field.

mod support;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use support::cluster::{self, TestNamespace};
use support::fixture::merge;

fn api(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("tugboat.dev", "v1alpha1", kind));
    Api::namespaced_with(client.clone(), ns, &resource)
}

async fn create(client: &kube::Client, ns: &str, kind: &str, name: &str, spec: Value) -> Result<(), String> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tugboat.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec
    }))
    .expect("object");
    api(client, ns, kind).create(&PostParams::default(), &object).await.map(|_| ()).map_err(|e| e.to_string())
}

fn app(overrides: Value) -> Value {
    let mut spec = json!({"source": {"repoURL": "https://git.example.com/team/app.git", "ref": {"branch": "main"}}});
    merge(&mut spec, overrides);
    spec
}

fn window(fields: Value) -> Value {
    let mut w = json!({"kind": "allow", "schedule": "0 22 * * 1-5", "duration": "4h", "timeZone": "Europe/Berlin"});
    merge(&mut w, fields);
    json!({"changeWindows": [w]})
}

#[tokio::test]
async fn crds_become_established_and_refuse_invalid_objects_naming_the_field() {
    let Some(client) = cluster::client().await else { return };
    cluster::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crds").await;

    // Valid objects of every kind are accepted.
    create(&client, &ns.name, "GitOpsApplication", "valid", app(window(json!({})))).await.expect("valid application");
    create(
        &client,
        &ns.name,
        "Webhook",
        "valid",
        json!({"provider": "github", "secretRef": {"name": "s"}, "targets": [{"name": "valid"}]}),
    )
    .await
    .expect("valid webhook");
    create(
        &client,
        &ns.name,
        "OutgoingWebhook",
        "valid",
        json!({"url": "https://ci.example.com/run", "triggers": ["deployment.finished"]}),
    )
    .await
    .expect("valid outgoing webhook");

    // (kind, spec, text the API server's refusal must contain)
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "GitOpsApplication",
            app(json!({"source": {"ref": {"branch": "main", "tag": "v1"}}})),
            &["spec.source.ref", "exactly one of branch, tag, commit or semver"],
        ),
        ("GitOpsApplication", app(json!({"source": {"ref": {"branch": null}}})), &["spec.source.ref", "exactly one"]),
        (
            "GitOpsApplication",
            app(window(json!({"schedule": "61 * * * *"}))),
            &["spec.changeWindows[0].schedule", "five cron fields"],
        ),
        ("GitOpsApplication", app(window(json!({"schedule": "0 22 * *"}))), &["spec.changeWindows[0].schedule"]),
        ("GitOpsApplication", app(window(json!({"duration": "4 hours"}))), &["spec.changeWindows[0].duration"]),
        ("GitOpsApplication", app(json!({"updates": {"interval": "-5m"}})), &["spec.updates.interval"]),
        ("GitOpsApplication", app(json!({"updates": {"interval": "1s"}})), &["spec.updates.interval", "at least 5s"]),
        ("GitOpsApplication", app(window(json!({"timeZone": "Europe Berlin"}))), &["spec.changeWindows[0].timeZone"]),
        (
            "GitOpsApplication",
            app(window(json!({"gates": ["Deploy"]}))),
            &["spec.changeWindows[0].gates[0]", "Unsupported value: \"Deploy\""],
        ),
        ("GitOpsApplication", app(window(json!({"kind": "maybe"}))), &["spec.changeWindows[0].kind"]),
        ("GitOpsApplication", app(json!({"updates": {"mechanism": "Push"}})), &["spec.updates.mechanism"]),
        ("GitOpsApplication", app(json!({"source": {"repoURL": "not a url"}})), &["spec.source.repoURL"]),
        ("GitOpsApplication", app(json!({"source": {"path": "../etc"}})), &["spec.source.path", "no '..'"]),
        ("GitOpsApplication", app(json!({"variables": {"BAD-NAME": "x"}})), &["spec.variables", "variable names"]),
        ("GitOpsApplication", app(json!({"source": {"ref": {"commit": "XYZ"}}})), &["spec.source.ref.commit"]),
        (
            "Webhook",
            json!({"provider": "jenkins", "targets": [{"name": "a"}]}),
            &["spec.provider", "Unsupported value: \"jenkins\""],
        ),
        ("Webhook", json!({"provider": "github", "targets": [{"name": "a"}]}), &["spec", "secretRef is required"]),
        (
            "Webhook",
            json!({"targets": [{"name": "a", "selector": {}}]}),
            &["spec.targets[0]", "exactly one of name or selector"],
        ),
        ("Webhook", json!({"targets": []}), &["spec.targets"]),
        (
            "Webhook",
            json!({"targets": [{"name": "a"}], "allowedVariables": ["no spaces"]}),
            &["spec.allowedVariables[0]"],
        ),
        (
            "OutgoingWebhook",
            json!({"url": "https://x.example.com", "triggers": ["deployment.exploded"]}),
            &["spec.triggers[0]", "Unsupported value"],
        ),
        (
            "OutgoingWebhook",
            json!({"url": "https://x.example.com", "triggers": ["deployment.started"], "gate": "Sometimes"}),
            &["spec.gate"],
        ),
        ("OutgoingWebhook", json!({"url": "ftp://x.example.com", "triggers": ["deployment.started"]}), &["spec.url"]),
        (
            "OutgoingWebhook",
            json!({"url": "https://x.example.com", "triggers": ["deployment.started"], "retry": {"maxAttempts": 0}}),
            &["spec.retry.maxAttempts"],
        ),
        (
            "OutgoingWebhook",
            json!({"url": "https://x.example.com", "triggers": ["deployment.started"],
            "waitForCompletion": {"statusUrlFrom": "ResponseField", "statusJsonPath": "$.state", "success": ["SUCCESS"]}}),
            &["spec.waitForCompletion", "statusUrlJsonPath is required"],
        ),
        // A poll loop without a pause, and a gate that may hold a deployment for ever.
        (
            "OutgoingWebhook",
            json!({"url": "https://x.example.com", "triggers": ["deployment.started"],
            "waitForCompletion": {"statusUrlFrom": "LocationHeader", "statusJsonPath": "$.state", "success": ["SUCCESS"], "pollInterval": "0s"}}),
            &["spec.waitForCompletion", "pollInterval must be at least 1s"],
        ),
        (
            "OutgoingWebhook",
            json!({"url": "https://x.example.com", "triggers": ["deployment.started"],
            "waitForCompletion": {"statusUrlFrom": "LocationHeader", "statusJsonPath": "$.state", "success": ["SUCCESS"], "timeout": "9999h"}}),
            &["spec.waitForCompletion", "timeout must be between 1s and 24h"],
        ),
    ];
    assert!(cases.len() >= 8);
    let mut failures = Vec::new();
    for (index, (kind, spec, expected)) in cases.into_iter().enumerate() {
        match create(&client, &ns.name, kind, &format!("bad-{index}"), spec.clone()).await {
            Ok(()) => failures.push(format!("case {index} ({kind} {spec}) was accepted")),
            Err(message) => {
                for text in expected {
                    if !message.contains(text) {
                        failures.push(format!("case {index} ({kind}): refusal does not mention {text:?}: {message}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
