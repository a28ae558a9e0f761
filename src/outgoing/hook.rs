//! One hook's spec, read: does it want this event from this application, is the spec usable,
//! and the request it makes for an event (rendered, not yet signed). Pure.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use super::{event, format, retry, template, wait};
use crate::api::{EventData, GitOpsApplication, HookGate, HttpMethod, OutgoingWebhook, OutgoingWebhookSpec};

/// Does `hook` get `event` from `app`? Same namespace, selected by `applications`, and (for
/// notifying hooks) listed in `triggers`. Gate hooks are called at their gate instead.
pub fn wants(hook: &OutgoingWebhook, app: &GitOpsApplication, data: &EventData) -> bool {
    hook.spec.gate == HookGate::None && hook.spec.triggers.contains(&data.event) && selects(hook, app)
}

/// Does the hook's `applications` selector (same namespace; empty: all) select `app`?
pub fn selects(hook: &OutgoingWebhook, app: &GitOpsApplication) -> bool {
    if hook.namespace() != app.namespace() {
        return false;
    }
    match &hook.spec.applications {
        None => true,
        Some(selector) => match Selector::try_from(selector.clone()) {
            Ok(selector) => selector.matches(app.labels()),
            Err(_) => false,
        },
    }
}

/// Everything the API server cannot check: templates, JSONPaths, durations, the selector.
///
/// # Errors
/// A message naming the field.
pub fn check(spec: &OutgoingWebhookSpec) -> Result<(), String> {
    template::Template::parse(&spec.url).map_err(|e| format!("spec.url: {e}"))?;
    for (name, value) in &spec.headers {
        template::Template::parse(value).map_err(|e| format!("spec.headers.{name}: {e}"))?;
        reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("spec.headers: {name:?} is not a header name"))?;
    }
    if let Some(payload) = &spec.payload {
        template::check_json("spec.payload", payload).map_err(|e| e.to_string())?;
    }
    if let Some(selector) = &spec.applications {
        Selector::try_from(selector.clone()).map_err(|e| format!("spec.applications: {e}"))?;
    }
    backoff(spec)?;
    if let Some(wait) = &spec.wait_for_completion {
        wait::check(wait).map_err(|e| e.to_string())?;
        // Also checked by the schema; objects written before it get the same answer here.
        let interval = wait.poll_interval.parse().map_err(|e| format!("spec.waitForCompletion.pollInterval: {e}"))?;
        if interval < MIN_POLL_INTERVAL {
            return Err(format!("spec.waitForCompletion.pollInterval: {} is below 1s", wait.poll_interval));
        }
        let timeout = wait.timeout.parse().map_err(|e| format!("spec.waitForCompletion.timeout: {e}"))?;
        if !(MIN_POLL_INTERVAL..=MAX_WAIT).contains(&timeout) {
            return Err(format!("spec.waitForCompletion.timeout: {} is not between 1s and 24h", wait.timeout));
        }
    }
    Ok(())
}

/// The shortest pause between status polls.
const MIN_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest a call may be waited for.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The retry policy, parsed.
///
/// # Errors
/// A message naming the field.
pub fn backoff(spec: &OutgoingWebhookSpec) -> Result<retry::Backoff, String> {
    Ok(retry::Backoff {
        max_attempts: u32::try_from(spec.retry.max_attempts.max(1)).unwrap_or(1),
        initial: spec.retry.initial_backoff.parse().map_err(|e| format!("spec.retry.initialBackoff: {e}"))?,
        max: spec.retry.max_backoff.parse().map_err(|e| format!("spec.retry.maxBackoff: {e}"))?,
    })
}

/// A request before signing: method, URL, headers and body, all rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// `None` for GET.
    pub body: Option<format::Body>,
}

/// Renders the hook's request for one event; `id` is the delivery id.
///
/// # Errors
/// A template error naming the field.
pub fn prepare(spec: &OutgoingWebhookSpec, data: &EventData, id: &str) -> Result<Prepared, template::FieldError> {
    let vars: BTreeMap<String, String> = event::variables(data);
    let url = template::render_url_field("spec.url", &spec.url, &vars)?;
    let headers = spec
        .headers
        .iter()
        .map(|(name, value)| Ok((name.clone(), template::render_field(&format!("spec.headers.{name}"), value, &vars)?)))
        .collect::<Result<Vec<_>, template::FieldError>>()?;
    let method = match spec.method {
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Get => reqwest::Method::GET,
    };
    let body = if method == reqwest::Method::GET {
        None
    } else {
        let payload = match &spec.payload {
            Some(template) => template::render_json("spec.payload", template, &vars)?,
            None => event::default_payload(data),
        };
        Some(format::body(spec.format, &payload, data, id))
    };
    Ok(Prepared { method, url, headers, body })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::EventType;

    fn hook(spec: serde_json::Value) -> OutgoingWebhook {
        serde_json::from_value(json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "OutgoingWebhook",
            "metadata": {"name": "h", "namespace": "ns", "uid": "u1"}, "spec": spec
        }))
        .expect("hook")
    }

    fn app(labels: serde_json::Value) -> GitOpsApplication {
        serde_json::from_value(json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
            "metadata": {"name": "shop", "namespace": "ns", "labels": labels},
            "spec": {"source": {"repoURL": "https://g/x.git", "ref": {"branch": "main"}}}
        }))
        .expect("app")
    }

    fn data(event: EventType) -> EventData {
        EventData {
            event,
            triggered_at: "2026-01-01T00:00:00Z".into(),
            triggered_by: "git".into(),
            app_id: "shop".into(),
            env_id: "ns".into(),
            deploy_id: Some("d1".into()),
            revision: Some("main@sha1:abc".into()),
            previous_revision: None,
            status: Some("started".into()),
            message: None,
            restarted: vec![],
            variables: BTreeMap::from([("SERVICE_TAG".into(), "dev".into())]),
            drifted: Vec::new(),
        }
    }

    #[test]
    fn selection_by_trigger_selector_and_gate() {
        let h = hook(
            json!({"url": "http://x/", "triggers": ["deployment.started"], "applications": {"matchLabels": {"team": "shop"}}}),
        );
        assert!(wants(&h, &app(json!({"team": "shop"})), &data(EventType::DeploymentStarted)));
        assert!(!wants(&h, &app(json!({"team": "other"})), &data(EventType::DeploymentStarted)));
        assert!(!wants(&h, &app(json!({"team": "shop"})), &data(EventType::DeploymentFinished)));
        let all = hook(json!({"url": "http://x/", "triggers": ["deployment.started"]}));
        assert!(wants(&all, &app(json!({})), &data(EventType::DeploymentStarted)));
        let gate = hook(json!({"url": "http://x/", "triggers": ["deployment.started"], "gate": "BeforeDeployment"}));
        assert!(!wants(&gate, &app(json!({})), &data(EventType::DeploymentStarted)), "gates are called at the gate");
        assert!(selects(&gate, &app(json!({}))));
    }

    #[test]
    fn prepare_renders_url_headers_and_payload() {
        let h = hook(json!({
            "url": "http://x/run?app=${app_id}&tag=${SERVICE_TAG}", "triggers": ["deployment.started"],
            "headers": {"X-Env": "${env_id}"}, "payload": {"app": "${app_id}", "n": 1, "rev": "${revision}"}
        }));
        let p = prepare(&h.spec, &data(EventType::DeploymentStarted), "msg_1").expect("prepares");
        assert_eq!(p.url, "http://x/run?app=shop&tag=dev");
        assert_eq!(p.headers, vec![("X-Env".to_owned(), "ns".to_owned())]);
        let body: serde_json::Value = serde_json::from_slice(&p.body.expect("body").bytes).expect("json");
        assert_eq!(body, json!({"app": "shop", "n": 1, "rev": "main@sha1:abc"}));
        let get = hook(json!({"url": "http://x/", "method": "GET", "triggers": ["deployment.started"]}));
        assert_eq!(prepare(&get.spec, &data(EventType::DeploymentStarted), "m").expect("ok").body, None);
        let bad = hook(json!({"url": "http://x/", "triggers": ["deployment.started"], "headers": {"X-A": "${nope}"}}));
        let error = prepare(&bad.spec, &data(EventType::DeploymentStarted), "m").expect_err("unknown");
        assert!(error.to_string().starts_with("spec.headers.X-A: ${nope} has no value"), "{error}");
    }

    #[test]
    fn check_names_the_field() {
        let h = hook(json!({"url": "http://x/${", "triggers": ["deployment.started"]}));
        assert!(check(&h.spec).expect_err("bad").starts_with("spec.url: unclosed"));
        let h = hook(json!({"url": "http://x/", "triggers": ["deployment.started"], "payload": {"a": ["${x"]}}));
        assert!(check(&h.spec).expect_err("bad").starts_with("spec.payload.a[0]: unclosed"));
        let h = hook(json!({"url": "http://x/", "triggers": ["deployment.started"], "waitForCompletion": {
            "statusUrlFrom": "SameUrl", "statusJsonPath": "$[", "success": ["OK"]}}));
        assert!(check(&h.spec).expect_err("bad").contains("statusJsonPath"));
        let h = hook(json!({"url": "http://x/", "triggers": ["deployment.started"], "headers": {"X-A": "${env_id}"}}));
        assert_eq!(check(&h.spec), Ok(()));
        let wait = |fields: serde_json::Value| {
            let mut wait = json!({"statusUrlFrom": "SameUrl", "statusJsonPath": "$.s", "success": ["OK"]});
            wait.as_object_mut().expect("object").extend(fields.as_object().expect("object").clone());
            check(
                &hook(json!({"url": "http://x/", "triggers": ["deployment.started"], "waitForCompletion": wait})).spec,
            )
        };
        assert_eq!(
            wait(json!({"pollInterval": "0s"})).expect_err("no pause"),
            "spec.waitForCompletion.pollInterval: 0s is below 1s"
        );
        assert!(wait(json!({"timeout": "25h"})).expect_err("unbounded").contains("spec.waitForCompletion.timeout"));
        assert_eq!(wait(json!({"pollInterval": "1s", "timeout": "24h"})), Ok(()));
    }
}
