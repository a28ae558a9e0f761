//! Webhook overrides: env values and image tags, only in workload pod templates.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tugboat::render::{RenderError, apply_env_overrides, apply_image_tag, env_var_names, with_tag};

fn container(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DB_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        ],
    })
}

fn pod_spec(image: &str) -> Value {
    json!({
        "initContainers": [container("init", "busybox:1.36")],
        "containers": [container("app", image)],
    })
}

fn objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": pod_spec("repo/web:1.0")}}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
               "spec": {"template": {"spec": pod_spec("registry.local:5000/team/db:2")}}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
               "spec": {"template": {"spec": pod_spec("agent@sha256:0123456789abcdef")}}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
               "spec": {"template": {"spec": pod_spec("registry.local:5000/migrate")}}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
               "spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec("nightly:old@sha256:ff")}}}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"}, "spec": pod_spec("pod:1")}),
        json!({"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "metadata": {"name": "crd"},
               "spec": {"template": {"spec": pod_spec("crd:1")}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"env": "x"}}),
    ]
}

#[test]
fn env_names_come_from_workload_templates() {
    let mut objects = objects();
    objects[0]["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "ONLY_IN_WEB", "value": "1"}));
    objects[5]["spec"]["containers"][0]["env"] = json!([{"name": "ONLY_IN_POD", "value": "1"}]);
    let names: Vec<_> = env_var_names(&objects).into_iter().collect();
    assert_eq!(names, ["DB_URL", "LOG_LEVEL", "ONLY_IN_WEB"]);
}

#[test]
fn env_overrides_set_existing_entries_only() {
    let mut objects = objects();
    let before = objects.clone();
    let vars = BTreeMap::from([
        ("LOG_LEVEL".to_owned(), "debug".to_owned()),
        ("DB_URL".to_owned(), "postgres://x".to_owned()),
        ("NOT_DECLARED".to_owned(), "x".to_owned()),
    ]);
    let applied = apply_env_overrides(&mut objects, &vars);
    assert_eq!(
        applied,
        [
            "Deployment/web: DB_URL",
            "Deployment/web: LOG_LEVEL",
            "StatefulSet/db: DB_URL",
            "StatefulSet/db: LOG_LEVEL",
            "DaemonSet/agent: DB_URL",
            "DaemonSet/agent: LOG_LEVEL",
            "Job/migrate: DB_URL",
            "Job/migrate: LOG_LEVEL",
            "CronJob/nightly: DB_URL",
            "CronJob/nightly: LOG_LEVEL",
        ]
    );
    let env = &objects[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env, &json!([{"name": "LOG_LEVEL", "value": "debug"}, {"name": "DB_URL", "value": "postgres://x"}]));
    let init_env = &objects[4]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["env"];
    assert_eq!(init_env[0]["value"], json!("debug"));
    assert_eq!(init_env.as_array().unwrap().len(), 2, "no entry added");
    assert_eq!(objects[5..], before[5..], "pod, foreign job and configmap untouched");
}

#[test]
fn image_tag_replaced_everywhere_it_should() {
    let mut objects = objects();
    let before = objects.clone();
    let applied = apply_image_tag(&mut objects, "v2.1_rc-1").unwrap();
    assert_eq!(applied.len(), 10);
    assert!(applied.contains(&"Deployment/web: repo/web:1.0 -> repo/web:v2.1_rc-1".to_owned()), "{applied:?}");
    let image = |o: &Value, path: &str| o.pointer(path).unwrap().as_str().unwrap().to_owned();
    let app = "/spec/template/spec/containers/0/image";
    assert_eq!(image(&objects[0], app), "repo/web:v2.1_rc-1");
    assert_eq!(image(&objects[0], "/spec/template/spec/initContainers/0/image"), "busybox:v2.1_rc-1");
    assert_eq!(image(&objects[1], app), "registry.local:5000/team/db:v2.1_rc-1");
    assert_eq!(image(&objects[2], app), "agent:v2.1_rc-1");
    assert_eq!(image(&objects[3], app), "registry.local:5000/migrate:v2.1_rc-1");
    assert_eq!(image(&objects[4], "/spec/jobTemplate/spec/template/spec/containers/0/image"), "nightly:v2.1_rc-1");
    assert_eq!(objects[5..], before[5..]);
}

#[test]
fn image_tag_is_validated_before_any_change() {
    let mut objects = objects();
    let before = objects.clone();
    let too_long = "a".repeat(129);
    for tag in ["", "-lead", ".lead", "has space", "a/b", "a:b", "ünï", too_long.as_str()] {
        let err = apply_image_tag(&mut objects, tag).unwrap_err();
        assert!(matches!(&err, RenderError::InvalidImageTag { tag: t } if t == tag), "{tag}");
    }
    assert_eq!(objects, before);
    assert!(apply_image_tag(&mut objects, &"a".repeat(128)).is_ok());
}

#[test]
fn with_tag_cases() {
    let cases = [
        ("app", "app:T"),
        ("app:1", "app:T"),
        ("repo/app:old", "repo/app:T"),
        ("host:5000/app", "host:5000/app:T"),
        ("host:5000/app:1", "host:5000/app:T"),
        ("host:5000/org/app:1@sha256:abc", "host:5000/org/app:T"),
        ("app@sha256:abc", "app:T"),
        ("docker.io/library/nginx:1.27-alpine", "docker.io/library/nginx:T"),
    ];
    for (image, want) in cases {
        assert_eq!(with_tag(image, "T"), want, "{image}");
    }
}

#[test]
fn odd_shapes_are_ignored() {
    let mut objects = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": "nope"}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "y"}, "spec": {"template": {"spec": {"containers": [1, {"image": 2}, {"image": ""}, {"env": {"name": "A"}}]}}}}),
        json!({"apiVersion": 1, "kind": "Deployment"}),
        json!("not an object"),
    ];
    let before = objects.clone();
    assert!(apply_image_tag(&mut objects, "t").unwrap().is_empty());
    assert!(apply_env_overrides(&mut objects, &BTreeMap::from([("A".to_owned(), "1".to_owned())])).is_empty());
    assert!(env_var_names(&objects).is_empty());
    assert_eq!(objects, before);
}
