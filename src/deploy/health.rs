//! Pure rollout status of workloads, the same judgement `kubectl rollout status` makes.

use serde_json::Value;

/// Where a workload's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every replica runs the current template and is available.
    Complete,
    /// Still rolling out; the text says what it waits for.
    Progressing(String),
    /// The Deployment is paused: it will not roll out until resumed.
    Paused,
    /// The Deployment exceeded its progress deadline.
    Failed(String),
}

/// Kinds whose rollout tugboat waits for and can restart.
pub const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// Is this `apps` kind a workload with a rollout?
pub fn is_workload(group: &str, kind: &str) -> bool {
    group == "apps" && WORKLOAD_KINDS.contains(&kind)
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// Judges a live workload object (or a hook's Job). Unknown kinds count as complete.
pub fn rollout(kind: &str, object: &Value) -> Rollout {
    match kind {
        "Job" => return job(object), // Jobs and Pods have no observedGeneration
        "Pod" => return pod(object),
        _ => {}
    }
    let generation = int(&object["metadata"]["generation"]);
    let status = &object["status"];
    if int(&status["observedGeneration"]) < generation {
        return Rollout::Progressing("waiting for the controller to observe the new spec".into());
    }
    match kind {
        "Deployment" => deployment(object),
        "StatefulSet" => statefulset(object),
        "DaemonSet" => daemonset(object),
        _ => Rollout::Complete,
    }
}

fn deployment(object: &Value) -> Rollout {
    let spec = &object["spec"];
    let status = &object["status"];
    if spec["paused"].as_bool() == Some(true) {
        return Rollout::Paused;
    }
    let deadline_exceeded = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if deadline_exceeded {
        return Rollout::Failed("progress deadline exceeded".into());
    }
    let desired = spec["replicas"].as_i64().unwrap_or(1);
    let updated = int(&status["updatedReplicas"]);
    let total = int(&status["replicas"]);
    let available = int(&status["availableReplicas"]);
    if updated < desired {
        Rollout::Progressing(format!("{updated} of {desired} new replicas updated"))
    } else if total > updated {
        Rollout::Progressing(format!("{} old replicas pending termination", total - updated))
    } else if available < updated {
        Rollout::Progressing(format!("{available} of {updated} updated replicas available"))
    } else {
        Rollout::Complete
    }
}

fn statefulset(object: &Value) -> Rollout {
    let spec = &object["spec"];
    let status = &object["status"];
    if spec["updateStrategy"]["type"] == "OnDelete" {
        return Rollout::Complete;
    }
    let desired = spec["replicas"].as_i64().unwrap_or(1);
    let ready = int(&status["readyReplicas"]);
    if ready < desired {
        return Rollout::Progressing(format!("{ready} of {desired} pods ready"));
    }
    let partition = int(&spec["updateStrategy"]["rollingUpdate"]["partition"]);
    if partition > 0 {
        let updated = int(&status["updatedReplicas"]);
        return if updated < desired - partition {
            Rollout::Progressing(format!("{updated} of {} partitioned pods updated", desired - partition))
        } else {
            Rollout::Complete
        };
    }
    if status["updateRevision"] != status["currentRevision"] {
        let updated = int(&status["updatedReplicas"]);
        return Rollout::Progressing(format!("{updated} of {desired} pods updated to the new revision"));
    }
    Rollout::Complete
}

/// A Job runs to an end: Complete (or SuccessCriteriaMet), or Failed with the controller's reason.
fn job(object: &Value) -> Rollout {
    let conditions = object["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let holds = |type_: &str| conditions.iter().find(|c| c["type"] == type_ && c["status"] == "True");
    if let Some(failed) = holds("Failed") {
        let why = failed["message"].as_str().or(failed["reason"].as_str()).unwrap_or("the Job failed");
        return Rollout::Failed(why.to_owned());
    }
    if holds("Complete").or_else(|| holds("SuccessCriteriaMet")).is_some() {
        return Rollout::Complete;
    }
    let active = int(&object["status"]["active"]);
    let failed = int(&object["status"]["failed"]);
    let retries = if failed > 0 { format!(", {failed} failed attempts") } else { String::new() };
    Rollout::Progressing(format!("{active} pods running{retries}"))
}

/// A Pod (a Helm hook) runs to an end: phase Succeeded or Failed.
fn pod(object: &Value) -> Rollout {
    match object["status"]["phase"].as_str().unwrap_or("Pending") {
        "Succeeded" => Rollout::Complete,
        "Failed" => {
            let status = &object["status"];
            let why = status["message"].as_str().or(status["reason"].as_str()).unwrap_or("the Pod failed");
            Rollout::Failed(why.to_owned())
        }
        phase => Rollout::Progressing(format!("the Pod is {phase}")),
    }
}

fn daemonset(object: &Value) -> Rollout {
    let status = &object["status"];
    let desired = int(&status["desiredNumberScheduled"]);
    let updated = int(&status["updatedNumberScheduled"]);
    let available = int(&status["numberAvailable"]);
    if updated < desired {
        Rollout::Progressing(format!("{updated} of {desired} daemon pods updated"))
    } else if available < desired {
        Rollout::Progressing(format!("{available} of {desired} daemon pods available"))
    } else {
        Rollout::Complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_states() {
        let job = |status: Value| json!({"metadata": {"generation": 1}, "status": status});
        assert_eq!(rollout("Job", &job(json!({"active": 1}))), Rollout::Progressing("1 pods running".into()));
        let complete = json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1});
        assert_eq!(rollout("Job", &job(complete)), Rollout::Complete);
        let failed = json!({"failed": 6, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
        assert_eq!(rollout("Job", &job(failed)), Rollout::Failed("Job has reached the specified backoff limit".into()));
        let pod = |status: Value| json!({"metadata": {"generation": 1}, "status": status});
        assert_eq!(
            rollout("Pod", &pod(json!({"phase": "Running"}))),
            Rollout::Progressing("the Pod is Running".into())
        );
        assert_eq!(rollout("Pod", &pod(json!({"phase": "Succeeded"}))), Rollout::Complete);
        assert_eq!(
            rollout("Pod", &pod(json!({"phase": "Failed", "reason": "Error"}))),
            Rollout::Failed("Error".into())
        );
    }

    #[test]
    fn deployment_states() {
        let d = |spec: Value, status: Value| json!({"metadata": {"generation": 2}, "spec": spec, "status": status});
        let done = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2});
        assert_eq!(rollout("Deployment", &d(json!({"replicas": 2}), done.clone())), Rollout::Complete);
        assert!(matches!(
            rollout("Deployment", &d(json!({"replicas": 2}), json!({"observedGeneration": 1}))),
            Rollout::Progressing(_)
        ));
        assert_eq!(
            rollout(
                "Deployment",
                &d(
                    json!({"replicas": 2}),
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2})
                )
            ),
            Rollout::Progressing("1 old replicas pending termination".into())
        );
        assert_eq!(
            rollout(
                "Deployment",
                &d(
                    json!({"replicas": 2}),
                    json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1})
                )
            ),
            Rollout::Progressing("1 of 2 updated replicas available".into())
        );
        assert_eq!(rollout("Deployment", &d(json!({"replicas": 2, "paused": true}), done)), Rollout::Paused);
        let failed = json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]});
        assert!(matches!(rollout("Deployment", &d(json!({}), failed)), Rollout::Failed(_)));
    }

    #[test]
    fn statefulset_and_daemonset_states() {
        let s = |status: Value| json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": status});
        assert_eq!(
            rollout(
                "StatefulSet",
                &s(json!({"observedGeneration": 1, "readyReplicas": 2, "currentRevision": "a", "updateRevision": "a"}))
            ),
            Rollout::Complete
        );
        assert!(matches!(
            rollout(
                "StatefulSet",
                &s(json!({"observedGeneration": 1, "readyReplicas": 2, "currentRevision": "a", "updateRevision": "b"}))
            ),
            Rollout::Progressing(_)
        ));
        let ds = |status: Value| json!({"metadata": {"generation": 1}, "status": status});
        assert_eq!(
            rollout(
                "DaemonSet",
                &ds(
                    json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2})
                )
            ),
            Rollout::Complete
        );
        assert!(matches!(
            rollout(
                "DaemonSet",
                &ds(
                    json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1, "numberAvailable": 2})
                )
            ),
            Rollout::Progressing(_)
        ));
    }
}
