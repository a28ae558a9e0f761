//! Events as outgoing webhooks see them: template variables, the default payload, delivery ids.
//!
//! Pure: the caller gives the occurrence and the time.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::api::{EventData, EventType, GitOpsApplication};

/// The wire name of an event type (`deployment.started`, ...).
pub fn name(event: EventType) -> &'static str {
    match event {
        EventType::TriggerReceived => "trigger.received",
        EventType::DeploymentDeferred => "deployment.deferred",
        EventType::DeploymentStarted => "deployment.started",
        EventType::DeploymentFinished => "deployment.finished",
        EventType::ApplicationCreated => "application.created",
        EventType::ApplicationDeleted => "application.deleted",
        EventType::ApplicationDrifted => "application.drifted",
    }
}

/// The names templates may use besides the application's variables (DESIGN §5).
pub const BUILTIN_VARIABLES: [&str; 11] = [
    "event",
    "triggered_at",
    "triggered_by",
    "app_id",
    "env_id",
    "deploy_id",
    "revision",
    "previous_revision",
    "status",
    "message",
    "restarted",
];

/// Template variables of an event: the application's variables, then the built-in ones
/// (which win, so a variable named `status` cannot hide the event's status). Absent values are
/// empty strings; `restarted` is a comma-separated list.
pub fn variables(data: &EventData) -> BTreeMap<String, String> {
    let mut vars = data.variables.clone();
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let builtins = [
        ("event", name(data.event).to_owned()),
        ("triggered_at", data.triggered_at.clone()),
        ("triggered_by", data.triggered_by.clone()),
        ("app_id", data.app_id.clone()),
        ("env_id", data.env_id.clone()),
        ("deploy_id", text(&data.deploy_id)),
        ("revision", text(&data.revision)),
        ("previous_revision", text(&data.previous_revision)),
        ("status", text(&data.status)),
        ("message", text(&data.message)),
        ("restarted", data.restarted.join(",")),
    ];
    for (key, value) in builtins {
        vars.insert(key.to_owned(), value);
    }
    vars
}

/// The fields every event of `app` carries; the caller fills in the deployment's.
/// `triggered_by`: a trigger's source (`Webhook/NAME (provider)`), `git` or `kubernetes`.
pub fn for_application(app: &GitOpsApplication, event: EventType, triggered_by: &str) -> EventData {
    use kube::ResourceExt;
    let mut variables = app.spec.variables.clone();
    if let Some(status) = &app.status {
        variables.extend(status.variables.clone());
    }
    EventData {
        event,
        triggered_at: jiff::Timestamp::now().to_string(),
        triggered_by: triggered_by.to_owned(),
        app_id: app.name_any(),
        env_id: app.namespace().unwrap_or_default(),
        deploy_id: None,
        revision: None,
        previous_revision: None,
        status: None,
        message: None,
        restarted: Vec::new(),
        variables,
        drifted: Vec::new(),
    }
}

/// The payload sent when the hook sets none: the event itself.
pub fn default_payload(data: &EventData) -> serde_json::Value {
    serde_json::to_value(data).unwrap_or(serde_json::Value::Null)
}

/// The `webhook-id` of one occurrence delivered by one hook: the same inputs always give the
/// same id, so an event emitted again (after a restart, or by a re-run reconcile) is recognised
/// as already queued, and every retry carries the id receivers deduplicate on.
pub fn delivery_id(hook_uid: &str, application_uid: &str, event: EventType, occurrence: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [hook_uid, application_uid, name(event), occurrence] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    format!("msg_{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> EventData {
        EventData {
            event: EventType::DeploymentFinished,
            triggered_at: "2026-01-01T00:00:00Z".into(),
            triggered_by: "webhook/deploy".into(),
            app_id: "shop".into(),
            env_id: "prod".into(),
            deploy_id: Some("abc-1".into()),
            revision: Some("main@sha1:abc".into()),
            previous_revision: None,
            status: Some("succeeded".into()),
            message: Some("applied".into()),
            restarted: vec!["deployment/a".into(), "deployment/b".into()],
            variables: BTreeMap::from([("SERVICE_TAG".into(), "dev".into()), ("status".into(), "hidden".into())]),
            drifted: Vec::new(),
        }
    }

    #[test]
    fn every_builtin_is_set_and_wins_over_app_variables() {
        let vars = variables(&data());
        for name in BUILTIN_VARIABLES {
            assert!(vars.contains_key(name), "{name}");
        }
        assert_eq!(vars["event"], "deployment.finished");
        assert_eq!(vars["status"], "succeeded");
        assert_eq!(vars["restarted"], "deployment/a,deployment/b");
        assert_eq!(vars["previous_revision"], "");
        assert_eq!(vars["SERVICE_TAG"], "dev");
    }

    #[test]
    fn default_payload_uses_wire_names() {
        let payload = default_payload(&data());
        assert_eq!(payload["event"], "deployment.finished");
        assert_eq!(payload["app_id"], "shop");
        assert_eq!(payload["variables"]["SERVICE_TAG"], "dev");
        assert!(payload.get("previous_revision").is_none());
    }

    #[test]
    fn delivery_ids_are_deterministic_and_distinct() {
        let a = delivery_id("hook", "app", EventType::DeploymentStarted, "d1");
        assert_eq!(a, delivery_id("hook", "app", EventType::DeploymentStarted, "d1"));
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
        assert_ne!(a, delivery_id("hook", "app", EventType::DeploymentFinished, "d1"));
        assert_ne!(a, delivery_id("hook", "app", EventType::DeploymentStarted, "d2"));
        assert_ne!(a, delivery_id("hook2", "app", EventType::DeploymentStarted, "d1"));
        // Separators keep ("ab","c") and ("a","bc") apart.
        assert_ne!(
            delivery_id("ab", "c", EventType::DeploymentStarted, ""),
            delivery_id("a", "bc", EventType::DeploymentStarted, "")
        );
    }
}
