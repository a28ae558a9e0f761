//! Helm hooks in what a chart renders (`helm.sh/hook` annotations), as tugboat runs them:
//!
//! - `pre-install` (first deployment) and `pre-upgrade` (every later one) are applied before
//!   everything else, lowest `helm.sh/hook-weight` first, and their Jobs must complete before
//!   the rest is applied; a failed Job fails the deployment and nothing else is applied.
//! - `post-install` and `post-upgrade` are applied once the rest rolled out, and their Jobs
//!   must complete before the deployment succeeds.
//! - `helm.sh/hook-delete-policy`: `before-hook-creation` (the default, as in Helm 3) deletes
//!   the hook's previous object before it is applied again, so a migration Job runs afresh;
//!   `hook-succeeded` and `hook-failed` delete it once its Jobs ended that way.
//! - Other hooks (`test`, `pre-delete`, `post-delete`, `*-rollback`) are not applied.
//! - Only a Helm chart's output has hooks (the controller's `Planned::chart`); the annotation
//!   on a plain manifest or a kustomization's object is just an annotation. A re-apply that corrects drift
//!   (same inputs) runs no hooks.
//!
//! Hook objects are not in the inventory (as Helm does not track them in a release), so they
//! are never pruned; their delete policies clean them up.

use super::plan::PlannedObject;
use crate::api::InventoryEntry;

pub const HOOK_ANNOTATION: &str = "helm.sh/hook";
pub const WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
pub const DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// When in a deployment a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before anything else is applied.
    Pre,
    /// After the rest rolled out.
    Post,
}

/// A chart's objects, sorted into the hooks of this deployment and the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub main: Vec<PlannedObject>,
    pub pre: Vec<PlannedObject>,
    pub post: Vec<PlannedObject>,
    /// Hooks of events tugboat has no use for (`test`, `*-delete`, `*-rollback`), and hooks of
    /// the other of install and upgrade: not applied.
    pub skipped: Vec<String>,
}

/// Sorts `objects`; `install`: the application's first deployment (nothing applied yet).
pub fn split(objects: Vec<PlannedObject>, install: bool) -> Split {
    let (pre_event, post_event) =
        if install { ("pre-install", "post-install") } else { ("pre-upgrade", "post-upgrade") };
    let mut split = Split::default();
    for object in objects {
        let Some(events) = annotation(&object, HOOK_ANNOTATION) else {
            split.main.push(object);
            continue;
        };
        let events: Vec<&str> = events.split(',').map(str::trim).collect();
        if events.contains(&pre_event) {
            split.pre.push(object);
        } else if events.contains(&post_event) {
            split.post.push(object);
        } else {
            split.skipped.push(object.display());
        }
    }
    for hooks in [&mut split.pre, &mut split.post] {
        hooks.sort_by_key(|o| (weight(o), o.gvk.kind.clone(), o.name.clone()));
    }
    split
}

/// `helm.sh/hook-weight`, 0 when absent or not a number (as Helm).
fn weight(object: &PlannedObject) -> i64 {
    annotation(object, WEIGHT_ANNOTATION).and_then(|w| w.trim().parse().ok()).unwrap_or(0)
}

/// Which delete policies a hook object (planned or live) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletePolicy {
    pub before_creation: bool,
    pub on_success: bool,
    pub on_failure: bool,
}

impl DeletePolicy {
    /// From the annotation's value; none given means `before-hook-creation` (Helm 3).
    pub fn parse(value: Option<&str>) -> DeletePolicy {
        let names: Vec<&str> = value.unwrap_or("").split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        if names.is_empty() {
            return DeletePolicy { before_creation: true, on_success: false, on_failure: false };
        }
        DeletePolicy {
            before_creation: names.contains(&"before-hook-creation"),
            on_success: names.contains(&"hook-succeeded"),
            on_failure: names.contains(&"hook-failed"),
        }
    }

    pub fn of(object: &serde_json::Value) -> DeletePolicy {
        DeletePolicy::parse(object["metadata"]["annotations"][DELETE_POLICY_ANNOTATION].as_str())
    }
}

/// A hook's Jobs and Pods are waited for (until they succeed or fail); other kinds are done
/// once applied.
pub fn is_awaited(entry: &InventoryEntry) -> bool {
    (entry.kind == "Job" && entry.api_version.starts_with("batch/"))
        || (entry.kind == "Pod" && entry.api_version == "v1")
}

fn annotation<'a>(object: &'a PlannedObject, name: &str) -> Option<&'a str> {
    object.value["metadata"]["annotations"][name].as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::GroupVersionKind;
    use serde_json::json;

    fn object(kind: &str, name: &str, annotations: serde_json::Value) -> PlannedObject {
        PlannedObject {
            gvk: GroupVersionKind::gvk("batch", "v1", kind),
            name: name.into(),
            namespace: None,
            origin: "chart (helm output)#1".into(),
            value: json!({"metadata": {"name": name, "annotations": annotations}}),
        }
    }

    #[test]
    fn hooks_are_sorted_by_event_and_weight() {
        let objects = vec![
            object("Deployment", "web", json!({})),
            object("Job", "migrate", json!({HOOK_ANNOTATION: "pre-install,pre-upgrade", WEIGHT_ANNOTATION: "5"})),
            object("Job", "schema", json!({HOOK_ANNOTATION: "pre-upgrade", WEIGHT_ANNOTATION: "-5"})),
            object("Job", "seed", json!({HOOK_ANNOTATION: "post-install"})),
            object("Pod", "smoke", json!({HOOK_ANNOTATION: "test"})),
            object("Job", "notify", json!({HOOK_ANNOTATION: " post-upgrade , post-install "})),
        ];
        let names = |objects: &[PlannedObject]| objects.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
        let upgrade = split(objects.clone(), false);
        assert_eq!(names(&upgrade.main), ["web"]);
        assert_eq!(names(&upgrade.pre), ["schema", "migrate"], "lowest weight first");
        assert_eq!(names(&upgrade.post), ["notify"]);
        assert_eq!(upgrade.skipped, ["Job/seed", "Pod/smoke"]);
        let install = split(objects, true);
        assert_eq!(names(&install.pre), ["migrate"]);
        assert_eq!(names(&install.post), ["notify", "seed"]);
        assert_eq!(install.skipped, ["Job/schema", "Pod/smoke"]);
    }

    #[test]
    fn delete_policies() {
        assert_eq!(
            DeletePolicy::parse(None),
            DeletePolicy { before_creation: true, on_success: false, on_failure: false },
            "Helm 3's default"
        );
        assert_eq!(
            DeletePolicy::parse(Some("hook-succeeded")),
            DeletePolicy { before_creation: false, on_success: true, on_failure: false }
        );
        assert_eq!(
            DeletePolicy::parse(Some("before-hook-creation, hook-succeeded,hook-failed")),
            DeletePolicy { before_creation: true, on_success: true, on_failure: true }
        );
    }
}
