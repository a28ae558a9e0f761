//! Kubernetes Events on applications: one per deployment start and finish, and per failure.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

use super::Context;
use crate::api::GitOpsApplication;

/// Publishes an event; a failure to publish is logged, never fatal.
pub async fn publish(context: &Context, app: &GitOpsApplication, warning: bool, reason: &str, note: String) {
    send(&context.recorder, &app.object_ref(&()), event(warning, reason, note)).await;
}

/// [`publish`] without waiting for it: for events on the way of a deployment, which should not
/// wait on an API round trip.
pub fn publish_in_background(context: &Context, app: &GitOpsApplication, reason: &str, note: String) {
    let (recorder, reference, event) = (context.recorder.clone(), app.object_ref(&()), event(false, reason, note));
    tokio::spawn(async move { send(&recorder, &reference, event).await });
}

fn event(warning: bool, reason: &str, note: String) -> Event {
    Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_owned(),
        note: Some(note),
        action: "Deploy".to_owned(),
        secondary: None,
    }
}

async fn send(recorder: &Recorder, reference: &ObjectReference, event: Event) {
    if let Err(error) = recorder.publish(&event, reference).await {
        tracing::warn!(%error, reason = %event.reason, "cannot publish event");
    }
}
