//! Kubernetes Events on applications: one per deployment start and finish, and per failure.

use kube::Resource;
use kube::runtime::events::{Event, EventType};

use super::Context;
use crate::api::GitOpsApplication;

/// Publishes an event; a failure to publish is logged, never fatal.
pub async fn publish(context: &Context, app: &GitOpsApplication, warning: bool, reason: &str, note: String) {
    let event = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_owned(),
        note: Some(note),
        action: "Deploy".to_owned(),
        secondary: None,
    };
    if let Err(error) = context.recorder.publish(&event, &app.object_ref(&())).await {
        tracing::warn!(%error, reason, "cannot publish event");
    }
}
