//! Webhook overrides on rendered workloads: env values and image tags of pod templates only.
//!
//! Only pod templates of Deployment, DaemonSet, StatefulSet (`apps`), Job and CronJob (`batch`)
//! are touched. Bare Pods are never changed (their spec is immutable, an override would make the
//! apply fail), and the API group is checked so that a custom resource that happens to be named
//! `Job` in another group is left alone.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::error::RenderError;

/// Where the pod spec of a workload lives, or `None` when the object is not a workload.
fn pod_spec_pointer(object: &Value) -> Option<&'static str> {
    let kind = object.get("kind")?.as_str()?;
    let group = object.get("apiVersion")?.as_str()?.split_once('/').map(|(group, _)| group)?;
    match (group, kind) {
        ("apps" | "extensions", "Deployment" | "DaemonSet" | "StatefulSet") | ("batch", "Job") => {
            Some("/spec/template/spec")
        }
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// `Kind/name`, as shown in override reports.
fn label(object: &Value) -> String {
    let field = |pointer| object.pointer(pointer).and_then(Value::as_str).unwrap_or("?");
    format!("{}/{}", field("/kind"), field("/metadata/name"))
}

/// The containers and init containers of a workload's pod template.
fn containers(object: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    let spec = pod_spec_pointer(object).and_then(|p| object.pointer(p)).and_then(Value::as_object);
    spec.into_iter()
        .flat_map(|spec| ["initContainers", "containers"].map(|key| spec.get(key)))
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_object)
}

/// Mutable twin of [`containers`].
fn containers_mut(object: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    let pointer = pod_spec_pointer(object);
    let spec = pointer.and_then(|p| object.pointer_mut(p)).and_then(Value::as_object_mut);
    spec.into_iter()
        .flat_map(|spec| spec.iter_mut())
        .filter(|(key, _)| *key == "initContainers" || *key == "containers")
        .filter_map(|(_, list)| list.as_array_mut())
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Names of the `env` entries declared in workload pod templates: what a webhook may override.
pub fn env_var_names<'a>(objects: impl IntoIterator<Item = &'a Value>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for object in objects {
        for container in containers(object) {
            let entries = container.get("env").and_then(Value::as_array).into_iter().flatten();
            names.extend(entries.filter_map(|e| e.get("name")?.as_str()).map(str::to_owned));
        }
    }
    names
}

/// Sets `value` of every existing env entry whose name is in `vars` (dropping `valueFrom`,
/// which Kubernetes refuses next to `value`). Never adds entries: an override can only change
/// what the manifests already declare. Returns one `Kind/name: VAR` per object and variable.
pub fn apply_env_overrides<'a>(
    objects: impl IntoIterator<Item = &'a mut Value>,
    vars: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut applied = Vec::new();
    for object in objects {
        let label = label(object);
        let mut names = BTreeSet::new();
        for container in containers_mut(object) {
            let entries = container.get_mut("env").and_then(Value::as_array_mut).into_iter().flatten();
            for entry in entries.filter_map(Value::as_object_mut) {
                let Some(name) = entry.get("name").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                if let Some(value) = vars.get(&name) {
                    entry.remove("valueFrom");
                    entry.insert("value".to_owned(), Value::String(value.clone()));
                    names.insert(name);
                }
            }
        }
        applied.extend(names.into_iter().map(|name| format!("{label}: {name}")));
    }
    applied
}

/// Replaces the tag (and any digest) of every container image of workload pod templates.
/// Returns one `Kind/name: old -> new` per container. The tag is checked before anything changes.
pub fn apply_image_tag<'a>(
    objects: impl IntoIterator<Item = &'a mut Value>,
    tag: &str,
) -> Result<Vec<String>, RenderError> {
    if !is_valid_tag(tag) {
        return Err(RenderError::InvalidImageTag { tag: tag.to_owned() });
    }
    let mut applied = Vec::new();
    for object in objects {
        let label = label(object);
        for container in containers_mut(object) {
            let Some(Value::String(image)) = container.get_mut("image") else {
                continue;
            };
            if image.is_empty() {
                continue;
            }
            let new = with_tag(image, tag);
            applied.push(format!("{label}: {image} -> {new}"));
            *image = new;
        }
    }
    Ok(applied)
}

/// `repo/app:old` → `repo/app:TAG`; `host:5000/app` → `host:5000/app:TAG` (a `:` before the
/// last `/` is a registry port, not a tag); `app@sha256:…` → `app:TAG` (the digest pinned the
/// old content, keeping it would make the new tag meaningless).
pub fn with_tag(image: &str, tag: &str) -> String {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    let last_segment = name.rfind('/').map_or(0, |slash| slash + 1);
    let repository = match name.get(last_segment..).and_then(|segment| segment.rfind(':')) {
        Some(colon) => name.get(..last_segment + colon).unwrap_or(name),
        None => name,
    };
    format!("{repository}:{tag}")
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    chars.next().is_some_and(word) && tag.len() <= 128 && chars.all(|c| word(c) || c == '.' || c == '-')
}
