//! Request bodies: plain JSON, or a CloudEvents 1.0 event in structured mode.

use serde_json::{Value, json};

use super::event;
use crate::api::{EventData, PayloadFormat};

/// Content type of CloudEvents structured mode (JSON event format).
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// Content type of plain JSON bodies.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// A body ready to sign and send.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// The CloudEvents `type` of an event, reverse-DNS as the spec recommends: `dev.tugboat.deployment.started`.
pub fn cloudevent_type(data: &EventData) -> String {
    format!("dev.tugboat.{}", event::name(data.event))
}

/// The CloudEvents `source`: the application, as a URI reference.
pub fn cloudevent_source(data: &EventData) -> String {
    format!("/apis/tugboat.dev/v1alpha1/namespaces/{}/gitopsapplications/{}", data.env_id, data.app_id)
}

/// Encodes `payload` (already rendered) in `format`. `id` is the delivery id, which is also
/// the CloudEvents `id` (the same on retries, as the spec wants for duplicates).
pub fn body(format: PayloadFormat, payload: &Value, data: &EventData, id: &str) -> Body {
    let value = match format {
        PayloadFormat::Json => payload.clone(),
        PayloadFormat::Cloudevents => json!({
            "specversion": "1.0",
            "id": id,
            "source": cloudevent_source(data),
            "type": cloudevent_type(data),
            "subject": data.app_id,
            "time": data.triggered_at,
            "datacontenttype": "application/json",
            "data": payload,
        }),
    };
    let content_type = match format {
        PayloadFormat::Json => JSON_CONTENT_TYPE,
        PayloadFormat::Cloudevents => CLOUDEVENTS_CONTENT_TYPE,
    };
    Body { content_type, bytes: serde_json::to_vec(&value).unwrap_or_default() }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::EventType;

    fn data() -> EventData {
        EventData {
            event: EventType::DeploymentStarted,
            triggered_at: "2026-01-01T00:00:00Z".into(),
            triggered_by: "git".into(),
            app_id: "shop".into(),
            env_id: "prod".into(),
            deploy_id: None,
            revision: None,
            previous_revision: None,
            status: None,
            message: None,
            restarted: vec![],
            variables: BTreeMap::new(),
            drifted: Vec::new(),
        }
    }

    #[test]
    fn json_is_the_payload_itself() {
        let b = body(PayloadFormat::Json, &json!({"a": 1}), &data(), "msg_1");
        assert_eq!(b.content_type, "application/json");
        assert_eq!(serde_json::from_slice::<Value>(&b.bytes).ok(), Some(json!({"a": 1})));
    }

    #[test]
    fn cloudevents_structured_mode_has_the_required_attributes() {
        let b = body(PayloadFormat::Cloudevents, &json!({"a": 1}), &data(), "msg_1");
        assert!(b.content_type.starts_with("application/cloudevents+json"));
        let v: Value = serde_json::from_slice(&b.bytes).expect("json");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], "msg_1");
        assert_eq!(v["type"], "dev.tugboat.deployment.started");
        assert_eq!(v["source"], "/apis/tugboat.dev/v1alpha1/namespaces/prod/gitopsapplications/shop");
        assert_eq!(v["time"], "2026-01-01T00:00:00Z");
        assert_eq!(v["data"], json!({"a": 1}));
    }
}
