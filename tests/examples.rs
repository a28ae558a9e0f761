//! Every manifest in examples/ is accepted by the test API server (created for real, so the
//! CRD schemas and CEL rules check it), and every Webhook provider has an example.

mod support;

use std::path::PathBuf;

use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;

use support::cluster::{self, TestNamespace};

fn examples() -> Vec<(String, Vec<Value>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read example");
            let docs: Vec<Value> = text
                .split("\n---")
                .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
                .filter(Value::is_object)
                .collect();
            (path.file_name().unwrap_or_default().to_string_lossy().into_owned(), docs)
        })
        .collect()
}

#[test]
fn every_provider_has_an_example() {
    let crd =
        serde_json::to_value(tugboat::crds::all().into_iter().find(|(f, _)| *f == "webhooks.yaml").expect("crd").1)
            .expect("json");
    let providers =
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["provider"]["enum"]
            .as_array()
            .expect("provider enum")
            .clone();
    let used: Vec<Value> = examples()
        .into_iter()
        .flat_map(|(_, docs)| docs)
        .filter(|d| d["kind"] == "Webhook")
        .map(|d| d["spec"]["provider"].clone())
        .collect();
    for provider in providers {
        assert!(used.contains(&provider), "examples/ has no Webhook with provider {provider}");
    }
}

#[tokio::test]
async fn every_example_is_accepted_by_the_api_server() {
    let Some(client) = cluster::client().await else { return };
    cluster::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "examples").await;
    let mut created = 0;
    for (file, docs) in examples() {
        for doc in docs {
            let object: DynamicObject = serde_json::from_value(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            let types = object.types.clone().expect("apiVersion and kind");
            let (group, version) = types.api_version.split_once('/').unwrap_or(("", types.api_version.as_str()));
            let gvk = kube::api::GroupVersionKind::gvk(group, version, &types.kind);
            let (resource, _) = kube::discovery::pinned_kind(&client, &gvk).await.expect("kind served");
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource);
            api.create(&PostParams::default(), &object).await.unwrap_or_else(|e| {
                panic!("{file}: {} {}: {e}", types.kind, object.metadata.name.clone().unwrap_or_default())
            });
            created += 1;
        }
    }
    assert!(created >= 20, "created {created} objects");
}
