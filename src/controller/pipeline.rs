//! One reconcile of an application, as a named pipeline of phases, each a function with a
//! typed output:
//!
//! ```text
//! check ─▶ inputs (credentials, source, trigger claim) ─▶ build (render, plan) ─▶ start ─▶ …
//!                                       … ─▶ gates? ─▶ apply ─▶ rollout ─▶ after gates? ─▶ finish
//! ```
//!
//! Nothing here waits on the outside world: a deployment that waits (for gates, for its
//! rollout) persists its phase in its record (`status.deployments[].phase`) and the reconcile
//! returns; the next one (woken by the gate hook, the workload's watch, or its requeue) looks
//! again. The decisions are pure (`decide`); the phases do the I/O; [`Run`] holds the status
//! being built and writes it.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};

use super::decide::{self, Plan};
use super::report::{self, Failure, Stop};
use super::{Context, Error, FINALIZER, build, deployment, events, inputs, notify, status};
use crate::api::{GitOpsApplication, GitOpsApplicationStatus};
use crate::conditions::{self, Reason, STALLED};
use crate::deploy::plan::Owner;

#[tracing::instrument(skip_all, fields(application = %app.name_any(), namespace = app.namespace().unwrap_or_default()))]
pub async fn reconcile(app: Arc<GitOpsApplication>, context: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let _in_flight = context.metrics.reconcile_started();
    let namespace = app.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<GitOpsApplication> = Api::namespaced(context.client.clone(), &namespace);
    // The watch's copy may not show this process's last status write yet (see `status`).
    let app = if context.written.is_current(&app) { app } else { Arc::new(api.get(&app.name_any()).await?) };
    let (api_ref, context_ref) = (&api, &context);
    let result = finalizer(&api, FINALIZER, app, move |event| async move {
        match event {
            Finalizer::Apply(app) => apply(&app, api_ref, context_ref).await,
            Finalizer::Cleanup(app) => cleanup(&app, context_ref).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    context.metrics.reconcile_finished(result.is_ok(), started.elapsed());
    tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, ok = result.is_ok(), "reconcile finished");
    result
}

pub(super) fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// The running status of one reconcile, written at the end of each path ([`Run::report`]).
pub(super) struct Run<'a> {
    pub app: &'a GitOpsApplication,
    pub api: &'a Api<GitOpsApplication>,
    pub status: GitOpsApplicationStatus,
    pub generation: Option<i64>,
    written: &'a status::LastWritten,
    /// The work slot this reconcile holds while it fetches, renders and applies; taken once
    /// ([`Run::take_slot`]), so a phase that goes on to apply never waits for a second one.
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// How a reconcile ends early: the action to return, once the status saying why is written.
pub(super) type Exit = Result<Action, Error>;
/// What a phase gives the next one, or the reconcile's early end.
pub(super) type Phase<T> = Result<T, Exit>;

impl Run<'_> {
    pub fn condition(&mut self, type_: &str, ok: bool, reason: Reason, message: impl Into<String>) {
        conditions::set(&mut self.status.conditions, type_, ok, reason, message, self.generation, &now());
    }

    pub async fn write(&self) -> Result<(), Error> {
        status::write(self.api, self.app, &self.status, self.written).await
    }

    /// Writes the status only if this reconcile changed it.
    pub async fn write_if_changed(&self) -> Result<(), Error> {
        if self.app.status.as_ref() != Some(&self.status) { self.write().await } else { Ok(()) }
    }

    /// Ends the reconcile where `stop` says: the conditions it means (see `report`), one status
    /// write if anything changed, its Event, and when to look again.
    pub async fn report(&mut self, context: &Context, stop: Stop) -> Exit {
        if let Stop::Failed(Failure { reason, message, .. }) = &stop {
            tracing::info!(application = %self.app.name_any(), %reason, %message, "not ready");
        }
        let report = report::report(&mut self.status.conditions, &stop, self.generation, &now());
        self.write_if_changed().await?;
        if let Some(event) = report.event {
            events::publish(context, self.app, event.warning, event.reason, event.message).await;
        }
        Ok(report.requeue.map_or_else(Action::await_change, Action::requeue))
    }

    /// Ready=False with the failure's reason; Reconciling cleared.
    pub async fn fail(&mut self, context: &Context, failure: Failure) -> Exit {
        self.report(context, Stop::Failed(failure)).await
    }

    /// Holds a work slot (`--concurrency`) from now until the reconcile ends.
    pub async fn take_slot(&mut self, context: &Context) {
        if self.slot.is_none() {
            self.slot = context.work_slot().await;
        }
    }

    pub fn owner(&self) -> Result<Owner, Error> {
        Ok(Owner { namespace: self.app.namespace().ok_or(Error::NoNamespace)?, name: self.app.name_any() })
    }
}

async fn apply(app: &GitOpsApplication, api: &Api<GitOpsApplication>, context: &Context) -> Result<Action, Error> {
    let status = app.status.clone().unwrap_or_default();
    let mut run = Run { app, api, status, generation: app.metadata.generation, written: &context.written, slot: None };
    if app.status.as_ref().and_then(|s| s.observed_generation).is_none() {
        notify::created(context, app).await;
    }
    match phases(&mut run, context).await {
        Ok(action) | Err(Ok(action)) => Ok(action),
        Err(Err(error)) => Err(error),
    }
}

/// What the plan says: stall, suspend, carry on the deployment under way, or inputs → build →
/// start → carry out.
async fn phases(run: &mut Run<'_>, context: &Context) -> Phase<Action> {
    let limits = decide::Limits {
        allow_file_sources: context.settings.allow_file_sources,
        default_windows: &context.settings.default_windows,
    };
    let checked = decide::validate(&run.app.spec, &limits);
    match decide::plan(checked, run.app.spec.suspend, run.status.deployments.last()) {
        Plan::Stall(message) => {
            run.status.observed_generation = run.generation;
            Err(run.report(context, Stop::Stalled(Reason::InvalidSpec, message)).await)
        }
        Plan::Suspend => {
            run.status.observed_generation = run.generation;
            Err(run.report(context, Stop::Suspended).await)
        }
        Plan::CarryOn(checked, record) => {
            conditions::clear(&mut run.status.conditions, STALLED);
            Err(deployment::carry_on(run, context, &checked, *record).await)
        }
        Plan::Inputs(checked) => {
            run.take_slot(context).await;
            conditions::clear(&mut run.status.conditions, STALLED);
            run.status.observed_generation = run.generation;
            let work = inputs::source_and_trigger(run, context, &checked).await?;
            let planned = match build::render_and_plan(run, context, &work, &checked).await? {
                Ok(planned) => planned,
                Err(failure) => return Err(deployment::abandon(run, context, failure).await),
            };
            let started = deployment::start(run, context, &work).await.map_err(Err)?;
            Err(deployment::carry_out(run, context, &checked, &work, started, planned).await)
        }
    }
}

/// Deletion: with `prune: true`, delete every object the application created.
async fn cleanup(app: &GitOpsApplication, context: &Context) -> Result<Action, Error> {
    notify::deleted(context, app).await;
    context.written.forget(app);
    if !app.spec.prune {
        return Ok(Action::await_change());
    }
    let namespace = app.namespace().ok_or(Error::NoNamespace)?;
    let owner = Owner { namespace, name: app.name_any() };
    let inventory = app.status.as_ref().map(|s| s.inventory.clone()).unwrap_or_default();
    match context.deployer.delete_all(&owner, context.settings.acting_account(app), &inventory).await {
        Ok(deleted) => {
            tracing::info!(application = %owner.name, ?deleted, "deleted the application's objects");
            Ok(Action::await_change())
        }
        Err(error) => {
            events::publish(context, app, true, "CleanupFailed", error.to_string()).await;
            Err(error.into())
        }
    }
}
