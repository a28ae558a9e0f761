//! What the deployment pipeline tells outgoing webhooks, and the gates it waits on: small
//! helpers so the pipeline reads as a pipeline. Events are queued durably by the dispatcher.

use crate::api::{EventData, EventType, GitOpsApplication, HookGate, TriggerRecord};
use crate::outgoing::event::for_application;

use super::Context;

fn triggered_by(trigger: Option<&TriggerRecord>) -> String {
    trigger.map_or_else(|| "git".to_owned(), |t| t.source.clone())
}

/// `application.created`: sent once per application (its first reconcile).
pub async fn created(context: &Context, app: &GitOpsApplication) {
    let mut data = for_application(app, EventType::ApplicationCreated, "kubernetes");
    data.status = Some("created".into());
    context.outgoing.emit(app, data, "created").await;
}

/// `application.deleted`.
pub async fn deleted(context: &Context, app: &GitOpsApplication) {
    let mut data = for_application(app, EventType::ApplicationDeleted, "kubernetes");
    data.status = Some("deleted".into());
    context.outgoing.emit(app, data, "deleted").await;
}

/// `deployment.deferred`, once per held trigger (its sequence) or held change.
pub async fn deferred(context: &Context, app: &GitOpsApplication, trigger: Option<&TriggerRecord>, message: &str) {
    let mut data = for_application(app, EventType::DeploymentDeferred, &triggered_by(trigger));
    data.status = Some("deferred".into());
    data.message = Some(message.to_owned());
    let occurrence = match trigger {
        Some(t) => format!("deferred/{}/{}", t.id, t.sequence),
        None => format!("deferred/{}", app.metadata.generation.unwrap_or_default()),
    };
    context.outgoing.emit(app, data, &occurrence).await;
}

/// The data of a deployment's events (`deployment.started` until changed); `variables` are
/// the ones it renders with.
pub fn deployment(
    app: &GitOpsApplication,
    deploy_id: &str,
    revision: &str,
    previous_revision: Option<String>,
    trigger: Option<&TriggerRecord>,
    variables: &std::collections::BTreeMap<String, String>,
) -> EventData {
    let mut data = for_application(app, EventType::DeploymentStarted, &triggered_by(trigger));
    data.variables = variables.clone();
    data.deploy_id = Some(deploy_id.to_owned());
    data.revision = Some(revision.to_owned());
    data.previous_revision = previous_revision;
    data
}

/// `deployment.started`.
pub async fn started(context: &Context, app: &GitOpsApplication, mut data: EventData) {
    data.status = Some("started".into());
    let occurrence = data.deploy_id.clone().unwrap_or_default();
    context.outgoing.emit(app, data, &occurrence).await;
}

/// What a gate is asked about: the deployment about to be applied (`deployment.started`), or
/// for `AfterDeployment` the deployment that rolled out (`deployment.finished`, succeeded).
pub fn gate_event(mut data: EventData, gate: HookGate) -> EventData {
    if gate == HookGate::AfterDeployment {
        data.event = EventType::DeploymentFinished;
        data.status = Some("succeeded".into());
    } else {
        data.status = Some("started".into());
    }
    data
}

/// `deployment.finished` with `succeeded` or `failed`.
pub async fn finished(context: &Context, app: &GitOpsApplication, mut data: EventData, ok: bool, message: &str) {
    data.event = EventType::DeploymentFinished;
    data.status = Some(if ok { "succeeded" } else { "failed" }.into());
    data.message = Some(message.to_owned());
    let occurrence = data.deploy_id.clone().unwrap_or_default();
    context.outgoing.emit(app, data, &occurrence).await;
}
