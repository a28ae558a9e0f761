//! Pure planning of a deployment: which objects to apply in which order, labelled as ours, and what to prune.

use std::collections::{BTreeMap, BTreeSet};

use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::api::InventoryEntry;
use crate::render::RenderedObject;

/// Label every applied object carries, so pruning can prove the object is ours.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "tugboat";
/// Name of the owning application.
pub const APPLICATION_LABEL: &str = "tugboat.dev/application";
/// Namespace of the owning application.
pub const APPLICATION_NAMESPACE_LABEL: &str = "tugboat.dev/application-namespace";

/// Field managers of applications' applies start with this (`tugboat/<namespace>/<name>`).
pub const FIELD_MANAGER_PREFIX: &str = "tugboat/";
/// The API server's limit on a field manager's length.
const MAX_FIELD_MANAGER: usize = 128;

/// Which application the objects belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
}

impl Owner {
    /// Labels put on every object the application applies.
    pub fn labels(&self) -> [(&'static str, String); 3] {
        [
            (MANAGED_BY_LABEL, MANAGED_BY.to_owned()),
            (APPLICATION_LABEL, self.name.clone()),
            (APPLICATION_NAMESPACE_LABEL, self.namespace.clone()),
        ]
    }

    /// The field manager of this application's applies. One per application, so two
    /// applications' fields are never confused, and an object another application applied
    /// shows who owns it (its managed fields). Kept within the API server's 128 characters.
    pub fn field_manager(&self) -> String {
        let manager = format!("{FIELD_MANAGER_PREFIX}{}/{}", self.namespace, self.name);
        if manager.len() <= MAX_FIELD_MANAGER {
            return manager;
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}/{}", self.namespace, self.name).as_bytes());
        let keep = MAX_FIELD_MANAGER - FIELD_MANAGER_PREFIX.len() - 17;
        let prefix: String = format!("{}/{}", self.namespace, self.name).chars().take(keep).collect();
        format!("{FIELD_MANAGER_PREFIX}{prefix}~{}", &hex::encode(digest)[..16])
    }

    /// Another application that applied `object` (by its field manager), if any. Managers of
    /// tugboat's status, restarts and versions before per-application managers are not
    /// applications' and do not count.
    pub fn other_owner(&self, object: &Value) -> Option<String> {
        let ours = self.field_manager();
        object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["manager"].as_str())
            .find(|manager| manager.starts_with(FIELD_MANAGER_PREFIX) && *manager != ours)
            .map(|manager| manager[FIELD_MANAGER_PREFIX.len()..].to_owned())
    }

    /// Does a live object carry this owner's labels? Pruning never touches one that does not.
    pub fn owns(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.labels().iter().all(|(key, value)| labels[*key].as_str() == Some(value.as_str()))
    }
}

/// One object ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedObject {
    pub gvk: GroupVersionKind,
    pub name: String,
    /// The namespace written in the manifest, if any (scope is decided against the API server).
    pub namespace: Option<String>,
    /// Where it came from, e.g. `deploy/app.yaml#2`, for error messages.
    pub origin: String,
    pub value: Value,
}

impl PlannedObject {
    pub fn is_namespace(&self) -> bool {
        self.gvk.group.is_empty() && self.gvk.kind == "Namespace"
    }

    pub fn is_crd(&self) -> bool {
        self.gvk.group == "apiextensions.k8s.io" && self.gvk.kind == "CustomResourceDefinition"
    }

    /// `kind/name` as users write it in `rollout-restart` and read it in messages.
    pub fn display(&self) -> String {
        format!("{}/{}", self.gvk.kind, self.name)
    }
}

/// Why a rendered set cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("{origin}: apiVersion {api_version:?} is malformed")]
    BadApiVersion { origin: String, api_version: String },
    #[error("{second} defines {object} again (first defined in {first})")]
    Duplicate { object: String, first: String, second: String },
}

/// Turns rendered objects into planned ones: labelled as the owner's, Namespaces first, then
/// CRDs, then the rest in file order; the same object twice is an error naming both places.
pub fn plan(objects: &[RenderedObject], owner: &Owner) -> Result<Vec<PlannedObject>, PlanError> {
    let mut planned = Vec::with_capacity(objects.len());
    let mut seen: BTreeMap<(String, String, String, Option<String>, String), String> = BTreeMap::new();
    for object in objects {
        let origin = format!("{}#{}", object.file, object.document);
        let api_version = object.value["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = object.value["kind"].as_str().unwrap_or_default().to_owned();
        let name = object.value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let namespace = object.value["metadata"]["namespace"].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) if !group.is_empty() && !version.is_empty() && !version.contains('/') => {
                (group.to_owned(), version.to_owned())
            }
            None if !api_version.is_empty() => (String::new(), api_version.clone()),
            _ => return Err(PlanError::BadApiVersion { origin, api_version }),
        };
        let key = (group.clone(), kind.clone(), name.clone(), namespace.clone(), String::new());
        if let Some(first) = seen.insert(key, origin.clone()) {
            return Err(PlanError::Duplicate { object: format!("{kind}/{name}"), first, second: origin });
        }
        let mut value = object.value.clone();
        add_labels(&mut value, owner);
        planned.push(PlannedObject {
            gvk: GroupVersionKind::gvk(&group, &version, &kind),
            name,
            namespace,
            origin,
            value,
        });
    }
    planned.sort_by_key(|o| {
        if o.is_namespace() {
            0
        } else if o.is_crd() {
            1
        } else {
            2
        }
    });
    Ok(planned)
}

fn add_labels(value: &mut Value, owner: &Owner) {
    let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let labels = metadata.entry("labels").or_insert_with(|| Value::Object(Default::default()));
    if !labels.is_object() {
        *labels = Value::Object(Default::default());
    }
    if let Some(labels) = labels.as_object_mut() {
        for (key, val) in owner.labels() {
            labels.insert(key.to_owned(), Value::String(val));
        }
    }
}

/// Objects in the previous inventory that the new one no longer has, in deletion order:
/// namespaced objects first, Namespaces and CRDs last.
pub fn to_prune(previous: &[InventoryEntry], current: &[InventoryEntry]) -> Vec<InventoryEntry> {
    let keep: BTreeSet<_> = current.iter().map(identity).collect();
    let mut gone: Vec<_> = previous.iter().filter(|e| !keep.contains(&identity(e))).cloned().collect();
    gone.sort_by_key(|e| match e.kind.as_str() {
        "Namespace" => 2,
        "CustomResourceDefinition" => 1,
        _ => 0,
    });
    gone
}

/// Group, kind, namespace and name: an object's identity across API versions.
fn identity(entry: &InventoryEntry) -> (String, String, Option<String>, String) {
    let group = entry.api_version.split_once('/').map(|(g, _)| g.to_owned()).unwrap_or_default();
    (group, entry.kind.clone(), entry.namespace.clone(), entry.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(file: &str, value: Value) -> RenderedObject {
        RenderedObject { file: file.to_owned(), document: 1, value }
    }

    fn owner() -> Owner {
        Owner { namespace: "team".into(), name: "shop".into() }
    }

    #[test]
    fn namespaces_and_crds_come_first_and_every_object_is_labelled() {
        let objects = vec![
            rendered("a.yaml", json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}})),
            rendered(
                "b.yaml",
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x.y"}}),
            ),
            rendered(
                "c.yaml",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "labels": "junk"}}),
            ),
        ];
        let planned = plan(&objects, &owner()).expect("plan");
        let kinds: Vec<_> = planned.iter().map(|p| p.gvk.kind.as_str()).collect();
        assert_eq!(kinds, ["Namespace", "CustomResourceDefinition", "Deployment"]);
        for p in &planned {
            assert!(owner().owns(&p.value), "{} is labelled", p.display());
        }
        assert_eq!(planned[2].gvk.group, "apps");
        assert_eq!(planned[0].gvk.group, "");
    }

    #[test]
    fn the_same_object_twice_names_both_files() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let error = plan(&[rendered("a.yaml", cm.clone()), rendered("b.yaml", cm)], &owner()).unwrap_err();
        assert_eq!(error.to_string(), "b.yaml#1 defines ConfigMap/c again (first defined in a.yaml#1)");
    }

    #[test]
    fn malformed_api_version_is_refused() {
        let bad = json!({"apiVersion": "a/b/c", "kind": "X", "metadata": {"name": "x"}});
        assert!(matches!(plan(&[rendered("a.yaml", bad)], &owner()), Err(PlanError::BadApiVersion { .. })));
    }

    #[test]
    fn an_object_without_our_labels_is_not_ours() {
        let foreign = json!({"metadata": {"labels": {"tugboat.dev/application": "shop"}}});
        assert!(!owner().owns(&foreign));
        let other_app = json!({"metadata": {"labels": {
            MANAGED_BY_LABEL: MANAGED_BY, APPLICATION_LABEL: "other", APPLICATION_NAMESPACE_LABEL: "team"}}});
        assert!(!owner().owns(&other_app));
    }

    #[test]
    fn prune_keeps_current_objects_across_api_versions_and_deletes_namespaces_last() {
        let entry = |api: &str, kind: &str, ns: Option<&str>, name: &str| InventoryEntry {
            api_version: api.into(),
            kind: kind.into(),
            namespace: ns.map(str::to_owned),
            name: name.into(),
        };
        let previous = vec![
            entry("v1", "Namespace", None, "old"),
            entry("apps/v1", "Deployment", Some("team"), "web"),
            entry("v1", "ConfigMap", Some("team"), "gone"),
            entry("autoscaling/v1", "HorizontalPodAutoscaler", Some("team"), "web"),
        ];
        let current = vec![
            entry("apps/v1", "Deployment", Some("team"), "web"),
            entry("autoscaling/v2", "HorizontalPodAutoscaler", Some("team"), "web"),
        ];
        let gone = to_prune(&previous, &current);
        let names: Vec<_> = gone.iter().map(|e| format!("{}/{}", e.kind, e.name)).collect();
        assert_eq!(names, ["ConfigMap/gone", "Namespace/old"]);
    }
    #[test]
    fn each_application_has_its_own_field_manager_and_sees_another_owner() {
        let shop = Owner { namespace: "team-a".into(), name: "shop".into() };
        let other = Owner { namespace: "team-b".into(), name: "shop".into() };
        assert_eq!(shop.field_manager(), "tugboat/team-a/shop");
        let long = Owner { namespace: "n".repeat(63), name: "a".repeat(253) };
        let manager = long.field_manager();
        assert!(manager.len() <= 128 && manager.starts_with("tugboat/nnn"), "{manager}");
        assert_ne!(manager, Owner { namespace: "n".repeat(63), name: "b".repeat(253) }.field_manager());
        let object = |managers: &[&str]| {
            let fields: Vec<Value> =
                managers.iter().map(|m| serde_json::json!({"manager": m, "operation": "Apply"})).collect();
            serde_json::json!({"metadata": {"managedFields": fields}})
        };
        assert_eq!(shop.other_owner(&object(&["tugboat/team-a/shop", "kubectl"])), None);
        assert_eq!(shop.other_owner(&object(&["tugboat", "tugboat-restart", "kube-controller-manager"])), None);
        assert_eq!(
            shop.other_owner(&object(&["tugboat/team-a/shop", &other.field_manager()])).as_deref(),
            Some("team-b/shop")
        );
        assert_eq!(shop.other_owner(&serde_json::json!({"metadata": {}})), None);
    }
}
