//! The Webhook controller: shows each Webhook its path (derived, see [`crate::webhook_path`]) and
//! reports whether it can be called.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Controller};
use kube::{Api, Client, ResourceExt};

use super::Error;
use crate::api::{Webhook, WebhookStatus};
use crate::conditions::{self, READY, Reason};
use crate::shared_watch::SharedWatch;
use crate::status_patch::{self, Precondition};
use crate::webhook_path::PathKey;

/// Runs the controller that assigns paths and reports readiness (the leader only) until
/// `shutdown` resolves, on the shared Webhook watch the trigger endpoint reads too.
pub async fn run(
    webhooks: &SharedWatch<Webhook>,
    client: Client,
    paths: Arc<PathKey>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::for_shared_stream(webhooks.subscribe(), webhooks.store.clone())
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |_, error, _| {
                tracing::warn!(%error, "webhook reconcile failed; retrying");
                Action::requeue(Duration::from_secs(5))
            },
            Arc::new((client, paths)),
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(webhook: Arc<Webhook>, context: Arc<(Client, Arc<PathKey>)>) -> Result<Action, Error> {
    let (client, paths) = (&context.0, &context.1);
    let namespace = webhook.namespace().ok_or(Error::NoNamespace)?;
    let mut status = webhook.status.clone().unwrap_or_default();
    // Derived every time: a path someone wrote into the status is overwritten, never kept.
    let path = paths.path_for(&webhook).ok_or(Error::NoUid)?;
    status.webhook_path = Some(path.clone());
    let generation = webhook.metadata.generation;
    status.observed_generation = generation;
    let now = Time(jiff::Timestamp::now());
    let problem = match missing_secret(client, &namespace, &webhook).await? {
        Some(problem) => Some((Reason::SecretNotFound, problem)),
        None => missing_target(client, &namespace, &webhook).await?.map(|p| (Reason::TargetNotFound, p)),
    };
    match problem {
        Some((reason, problem)) => {
            conditions::set(&mut status.conditions, READY, false, reason, problem, generation, &now)
        }
        None => conditions::set(
            &mut status.conditions,
            READY,
            true,
            Reason::Ready,
            format!("call POST {path}"),
            generation,
            &now,
        ),
    }
    if webhook.status.as_ref() != Some(&status) {
        write_status(client, &namespace, &webhook, &status).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn missing_secret(client: &Client, namespace: &str, webhook: &Webhook) -> Result<Option<String>, Error> {
    let Some(reference) = &webhook.spec.secret_ref else { return Ok(None) };
    let key = reference.key.as_deref().unwrap_or("token");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets.get_opt(&reference.name).await?;
    Ok(match secret {
        None => Some(format!("secret {:?} (spec.secretRef) not found", reference.name)),
        Some(secret) if !secret.data.as_ref().is_some_and(|d| d.contains_key(key)) => {
            Some(format!("secret {:?} has no key {key:?} (spec.secretRef.key)", reference.name))
        }
        Some(_) => None,
    })
}

/// A target named in `spec.targets` that does not exist (selectors may match nothing yet).
async fn missing_target(client: &Client, namespace: &str, webhook: &Webhook) -> Result<Option<String>, Error> {
    let apps: Api<crate::api::GitOpsApplication> = Api::namespaced(client.clone(), namespace);
    for name in webhook.spec.targets.iter().filter_map(|t| t.name.as_deref()) {
        if apps.get_opt(name).await?.is_none() {
            return Ok(Some(format!("target GitOpsApplication {name:?} (spec.targets) not found")));
        }
    }
    Ok(None)
}

/// Writes the controller's part of the status: everything but `lastDelivery`, which the
/// trigger endpoint owns (its own field manager).
async fn write_status(
    client: &Client,
    namespace: &str,
    webhook: &Webhook,
    status: &WebhookStatus,
) -> Result<(), Error> {
    let api: Api<Webhook> = Api::namespaced(client.clone(), namespace);
    let ours = WebhookStatus { last_delivery: None, ..status.clone() };
    status_patch::apply(&api, &webhook.name_any(), &ours, crate::FIELD_MANAGER, Precondition::None).await?;
    Ok(())
}
