//! Rolling restarts, as `kubectl rollout restart` does them: a timestamp annotation on the pod template.

use std::collections::BTreeSet;

use crate::api::{RestartTarget, WorkloadKind, WorkloadRef};

/// The annotation `kubectl rollout restart` sets; tugboat sets the same one.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

/// Which workloads a deployment restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RestartSelection {
    /// None (the default): workloads roll out only when their template changed.
    #[default]
    None,
    /// Every Deployment, DaemonSet and StatefulSet of the application.
    All,
    /// These.
    Named(BTreeSet<WorkloadRef>),
}

impl RestartSelection {
    /// What a trigger's restart list selects.
    pub fn from_targets(targets: &[RestartTarget]) -> Self {
        let mut named = BTreeSet::new();
        for target in targets {
            match target {
                RestartTarget::All => return Self::All,
                RestartTarget::Workload(workload) => named.insert(workload.clone()),
            };
        }
        if named.is_empty() { Self::None } else { Self::Named(named) }
    }

    /// Does the selection include this workload (`kind` as Kubernetes names it)?
    pub fn includes(&self, kind: &str, name: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => WorkloadKind::from_kind(kind).is_some(),
            Self::Named(named) => WorkloadKind::from_kind(kind)
                .is_some_and(|kind| named.contains(&WorkloadRef { kind, name: name.to_owned() })),
        }
    }
}

/// The merge patch that restarts a workload at `at` (RFC 3339).
pub fn patch(at: &str) -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: at}}}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(entries: &[&str]) -> Vec<RestartTarget> {
        entries.iter().map(|e| RestartTarget::try_from((*e).to_owned()).expect("target")).collect()
    }

    #[test]
    fn selection_matches_kind_and_name() {
        let named = RestartSelection::from_targets(&targets(&["deployment/a", "statefulset/db"]));
        assert!(named.includes("Deployment", "a"));
        assert!(named.includes("StatefulSet", "db"));
        assert!(!named.includes("Deployment", "b"));
        assert!(!named.includes("DaemonSet", "a"), "another kind of the same name");
        assert!(RestartSelection::from_targets(&targets(&["deployment/a", "all"])).includes("DaemonSet", "x"));
        assert!(!RestartSelection::from_targets(&targets(&["all"])).includes("ConfigMap", "x"), "not a workload");
        assert!(!RestartSelection::from_targets(&[]).includes("Deployment", "a"));
    }

    #[test]
    fn targets_read_what_they_write() {
        for entry in ["all", "deployment/web", "daemonset/agent", "statefulset/db.main"] {
            let target = RestartTarget::try_from(entry.to_owned()).expect("target");
            assert_eq!(target.to_string(), entry);
            assert_eq!(serde_json::to_value(&target).expect("json"), serde_json::json!(entry));
        }
        assert!(RestartTarget::try_from("Service/web".to_owned()).is_err());
        assert!(RestartTarget::try_from("deployment".to_owned()).is_err());
    }
}
