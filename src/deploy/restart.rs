//! Rolling restarts, as `kubectl rollout restart` does them: a timestamp annotation on the pod template.

use std::collections::BTreeSet;

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
    /// These, as lower-case `kind/name` (`deployment/web`).
    Named(BTreeSet<String>),
}

impl RestartSelection {
    /// Parses a trigger's restart list (`all` or `kind/name` entries).
    pub fn from_entries(entries: &[String]) -> Self {
        if entries.is_empty() {
            Self::None
        } else if entries.iter().any(|e| e == "all") {
            Self::All
        } else {
            Self::Named(entries.iter().map(|e| e.to_ascii_lowercase()).collect())
        }
    }

    /// Does the selection include this workload?
    pub fn includes(&self, kind: &str, name: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Named(names) => names.contains(&format!("{}/{}", kind.to_ascii_lowercase(), name)),
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

    #[test]
    fn selection_matches_kind_and_name_case_insensitively_on_kind() {
        let named = RestartSelection::from_entries(&["Deployment/a".into(), "statefulset/db".into()]);
        assert!(named.includes("Deployment", "a"));
        assert!(named.includes("StatefulSet", "db"));
        assert!(!named.includes("Deployment", "b"));
        assert!(RestartSelection::from_entries(&["all".into()]).includes("DaemonSet", "x"));
        assert!(!RestartSelection::from_entries(&[]).includes("Deployment", "a"));
    }
}
