//! One trigger call: look up → read (bounded) → verify → parse → select targets → validate →
//! record (once per delivery) → 202.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, to_bytes};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ListParams;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use futures::StreamExt;

use super::record::Recorded;
use super::secrets::{SecretError, SecretKey};
use super::{EndpointState, reply};
use crate::api::PATH_PREFIX;
use crate::api::RestartTarget;
use crate::api::{GitOpsApplication, TriggerRecord, Webhook, WebhookProvider};
use crate::trigger::deliveries::{self, DeliveryKey};
use crate::trigger::event::{ProviderEvent, RefName, parse_event};
use crate::trigger::query::{RolloutRestart, TriggerParams, check_unsigned_query, parse_form, parse_query};
use crate::trigger::{signature, variables};

/// Trigger writes of one call under way at once (a webhook may target many applications).
const PARALLEL_WRITES: usize = 32;

/// Provider label of calls that matched no Webhook.
const UNKNOWN_PROVIDER: &str = "unknown";

/// The provider as spelled in `spec.provider` (the metrics label).
fn provider_name(provider: WebhookProvider) -> &'static str {
    match provider {
        WebhookProvider::Generic => "generic",
        WebhookProvider::Github => "github",
        WebhookProvider::Gitlab => "gitlab",
        WebhookProvider::Bitbucket => "bitbucket",
        WebhookProvider::Gitea => "gitea",
        WebhookProvider::Dockerhub => "dockerhub",
        WebhookProvider::Harbor => "harbor",
        WebhookProvider::Standard => "standard",
    }
}

pub async fn trigger(
    State(state): State<Arc<EndpointState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let metrics = &state.metrics;
    if !state.ready.load(Ordering::SeqCst) {
        metrics.trigger_answered(UNKNOWN_PROVIDER, 503);
        return reply::unavailable("starting: the webhook cache is not ready yet");
    }
    // Limited after the lookup, so that calls to unknown paths and to each Webhook spend
    // budgets of their own (see `rate_limit`).
    let client = state.trusted_proxies.client(peer.ip(), &headers);
    let now = std::time::Instant::now();
    let path = format!("{PATH_PREFIX}{id}");
    // Found by the path its status shows, taken only if it is the path derived from its uid:
    // whoever can write `webhooks/status` cannot choose a path.
    let Some(webhook) = state
        .webhooks
        .find(|w| w.status.as_ref().and_then(|s| s.webhook_path.as_deref()) == Some(path.as_str()))
        .filter(|w| state.paths.path_for(w).as_deref() == Some(path.as_str()))
    else {
        if !state.rate_limit.allow_unknown(client, now) {
            metrics.trigger_answered(UNKNOWN_PROVIDER, 429);
            return reply::too_many_requests();
        }
        metrics.trigger_answered(UNKNOWN_PROVIDER, 404);
        return reply::not_found().await;
    };
    let response = if state.rate_limit.allow_webhook(path, client, now) {
        handle(&state, &webhook, query, headers, body).await
    } else {
        reply::too_many_requests()
    };
    metrics.trigger_answered(provider_name(webhook.spec.provider), response.status().as_u16());
    super::delivery::record(&state, &webhook, response.status());
    response
}

/// One call, phase by phase; each phase answers the call itself when it refuses it.
async fn handle(
    state: &Arc<EndpointState>,
    webhook: &Webhook,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match to_bytes(body, state.body_limit).await {
        Ok(body) => body,
        Err(_) => return reply::too_large(state.body_limit),
    };
    let namespace = webhook.namespace().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let accepted = async {
        let delivery = authenticate(state, &namespace, webhook, &headers, &body, now).await?;
        let mut params = parameters(webhook, query.as_deref(), &headers, &body)?;
        let event = deploying_event(webhook.spec.provider, &headers, &body)?;
        payload_variables(webhook, &body, &mut params)?;
        let targets = select_targets(state, &namespace, webhook, &event, &params).await?;
        let record = trigger_record(webhook, &params, now);
        // A call too large for one target changes none (the write checks again).
        for app in &targets {
            super::record::fits(app, &record).map_err(|e| reply::record_refused(&e))?;
        }
        let key = delivery.as_deref().map(|id| DeliveryKey::new(&webhook.name_any(), id));
        let outcomes = record_all(state, &namespace, &targets, &record, key.as_ref()).await?;
        let (sequences, duplicates) = split_outcomes(outcomes);
        if sequences.is_empty() {
            tracing::info!(webhook = %webhook.name_any(), %namespace, delivery = ?delivery, applications = ?duplicates, "delivery already recorded");
            return Err(reply::duplicate(delivery.as_deref().unwrap_or_default(), &duplicates));
        }
        let stored: Vec<GitOpsApplication> =
            targets.into_iter().filter(|app| sequences.contains_key(&app.name_any())).collect();
        let names: Vec<String> = stored.iter().map(ResourceExt::name_any).collect();
        tracing::info!(webhook = %webhook.name_any(), %namespace, trigger = %record.id, applications = ?names, "trigger recorded");
        received(state, &stored, &record);
        Ok::<_, Response>(reply::accepted(
            &record.id,
            &names,
            &sequences,
            &duplicates,
            deferral(state, &stored, &record, now),
        ))
    };
    accepted.await.unwrap_or_else(|refused| refused)
}

/// Verify before parsing anything the caller sent; returns the call's delivery id, if its
/// provider names one (a delivery already recorded is not recorded again, see `record`).
async fn authenticate(
    state: &EndpointState,
    namespace: &str,
    webhook: &Webhook,
    headers: &HeaderMap,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<Option<String>, Response> {
    verify(state, namespace, webhook, headers, body, now).await?;
    deliveries::delivery_id(webhook.spec.provider, headers).map_err(|e| reply::bad_request(e.to_string()))
}

/// Parameters: the query, plus the fields of an HTML form post. When the provider signs only
/// the body, the query may carry only what the Webhook lists.
#[allow(clippy::result_large_err)] // the refusal is the call's answer, made once per call
fn parameters(
    webhook: &Webhook,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TriggerParams, Response> {
    let mut params = parse_query(query).map_err(|e| reply::bad_request(e.to_string()))?;
    if webhook.spec.provider.signs_body_only() {
        let spec = &webhook.spec;
        check_unsigned_query(&params, spec.allowed_variables.as_deref(), &spec.allow_query_parameters)
            .map_err(|e| reply::bad_request(e.to_string()))?;
    }
    if is_form(headers) {
        let fields = parse_form(body).map_err(|e| reply::bad_request(e.to_string()))?;
        for (name, value) in fields {
            params.variables.entry(name).or_insert(value);
        }
    }
    Ok(params)
}

/// The provider's event, when it is one that deploys; pings and other events are answered 200.
#[allow(clippy::result_large_err)] // the refusal is the call's answer, made once per call
fn deploying_event(provider: WebhookProvider, headers: &HeaderMap, body: &[u8]) -> Result<ProviderEvent, Response> {
    let event = parse_event(provider, headers, body).map_err(|e| reply::bad_request(e.to_string()))?;
    match &event {
        ProviderEvent::Ping => Err(reply::ignored("ping")),
        // Generic and Standard Webhooks callers deploy with any event; providers' other events do not.
        ProviderEvent::Other(name) if !matches!(provider, WebhookProvider::Generic | WebhookProvider::Standard) => {
            Err(reply::ignored(format!("event {name:?} does not deploy")))
        }
        event if event.is_deletion() => Err(reply::ignored("the pushed ref was deleted")),
        _ => Ok(event),
    }
}

/// `variablesFromPayload`: values read from the (verified) JSON body; the query wins.
#[allow(clippy::result_large_err)] // the refusal is the call's answer, made once per call
fn payload_variables(webhook: &Webhook, body: &[u8], params: &mut TriggerParams) -> Result<(), Response> {
    if webhook.spec.variables_from_payload.is_empty() {
        return Ok(());
    }
    let payload: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| reply::bad_request(format!("variablesFromPayload needs a JSON body: {e}")))?;
    let found = variables::variables_from_payload(&webhook.spec.variables_from_payload, &payload)
        .map_err(|e| reply::bad_request(e.to_string()))?;
    for (name, value) in found {
        params.variables.entry(name).or_insert(value);
    }
    Ok(())
}

/// The applications the call concerns, each able to take its parameters. They come from the
/// operator's cache; when a named target is missing from it, or the call would be refused
/// because of it, the API server is asked instead, so a just-created application or a
/// just-discovered variable is never missed or refused.
async fn select_targets(
    state: &EndpointState,
    namespace: &str,
    webhook: &Webhook,
    event: &ProviderEvent,
    params: &TriggerParams,
) -> Result<Vec<GitOpsApplication>, Response> {
    let cached = cached_targets(state, namespace, webhook);
    let targets: Vec<_> = cached.applications.into_iter().filter(|app| concerns(event, app)).collect();
    let targets = match validate_all(webhook, &targets, params) {
        Ok(()) if cached.complete => targets,
        _ => {
            let fresh = read_targets(state, namespace, webhook).await?;
            let fresh: Vec<_> = fresh.into_iter().filter(|app| concerns(event, app)).collect();
            validate_all(webhook, &fresh, params).map_err(reply::bad_request)?;
            fresh
        }
    };
    if targets.is_empty() {
        return Err(reply::ignored(ignored_reason(event)));
    }
    Ok(targets)
}

fn trigger_record(webhook: &Webhook, params: &TriggerParams, now: jiff::Timestamp) -> TriggerRecord {
    let provider = serde_json::to_value(webhook.spec.provider).ok().and_then(|v| v.as_str().map(str::to_owned));
    TriggerRecord {
        id: uuid::Uuid::new_v4().to_string(),
        sequence: 0,
        at: Time(now),
        source: format!("Webhook/{} ({})", webhook.name_any(), provider.unwrap_or_default()),
        variables: params.variables.clone(),
        rollout_restart: restart_entries(params),
        tag: params.tag.clone(),
        coalesced_ids: Vec::new(),
        coalesced_count: 0,
        override_window: params.override_window && webhook.spec.allow_window_override,
        next_window_start: None,
    }
}

/// Every target's write must succeed before the 202; a webhook with many targets writes them
/// side by side. Returns what became of the call on each application.
async fn record_all(
    state: &EndpointState,
    namespace: &str,
    targets: &[GitOpsApplication],
    record: &TriggerRecord,
    delivery: Option<&DeliveryKey>,
) -> Result<BTreeMap<String, Recorded>, Response> {
    let writes = futures::stream::iter(targets.iter().map(ResourceExt::name_any))
        .map(|name| {
            let (writer, namespace, record) = (state.triggers.clone(), namespace.to_owned(), record.clone());
            let delivery = delivery.cloned();
            async move { writer.record(&namespace, &name, record, delivery).await.map(|outcome| (name, outcome)) }
        })
        .buffer_unordered(PARALLEL_WRITES)
        .collect::<Vec<_>>()
        .await;
    writes.into_iter().collect::<Result<BTreeMap<String, Recorded>, _>>().map_err(|e| reply::record_refused(&e))
}

/// The applications that stored the call, with their record sequences, and those that
/// already held its delivery.
fn split_outcomes(outcomes: BTreeMap<String, Recorded>) -> (BTreeMap<String, i64>, Vec<String>) {
    let mut sequences = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (name, outcome) in outcomes {
        match outcome {
            Recorded::Stored(sequence) => {
                sequences.insert(name, sequence);
            }
            Recorded::Duplicate => duplicates.push(name),
        }
    }
    (sequences, duplicates)
}

/// Tells outgoing webhooks (`trigger.received`) in the background: the trigger is already
/// durable, and the caller's 202 should not wait on hook status writes.
fn received(state: &EndpointState, targets: &[GitOpsApplication], record: &TriggerRecord) {
    for app in targets {
        let mut data =
            crate::outgoing::event::for_application(app, crate::api::EventType::TriggerReceived, &record.source);
        data.status = Some("received".into());
        data.variables.extend(record.variables.clone());
        data.restarted = record.rollout_restart.iter().map(ToString::to_string).collect();
        let (outgoing, app, id) = (state.outgoing.clone(), app.clone(), record.id.clone());
        tokio::spawn(async move { outgoing.emit(&app, data, &id).await });
    }
}

/// Whether the change windows of the targets hold the trigger back, and until when: the
/// latest opening among the held targets, unknown if any of them opens beyond the horizon.
fn deferral(
    state: &EndpointState,
    targets: &[GitOpsApplication],
    record: &TriggerRecord,
    now: jiff::Timestamp,
) -> Option<reply::Deferred> {
    let restarts = !record.rollout_restart.is_empty();
    let openings: Vec<Option<jiff::Timestamp>> = targets
        .iter()
        .filter_map(|app| crate::window::for_application(&app.spec.change_windows, &state.default_windows).ok())
        .filter_map(|windows| crate::window::held_until(&windows, now, restarts, record.override_window))
        .map(|opening| opening.at())
        .collect();
    if openings.is_empty() {
        return None;
    }
    let until = openings.iter().copied().collect::<Option<Vec<_>>>().and_then(|known| known.into_iter().max());
    Some(reply::Deferred { until })
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// Checks the call's signature or token with the webhook's secret (cached; re-read once when
/// a cached value does not verify, so a rotated secret works at once).
async fn verify(
    state: &EndpointState,
    namespace: &str,
    webhook: &Webhook,
    headers: &HeaderMap,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<signature::Verified, Response> {
    let provider = webhook.spec.provider;
    let Some(reference) = &webhook.spec.secret_ref else {
        return signature::verify(provider, &[], headers, body, now).map_err(|e| reply::unauthorized(e.to_string()));
    };
    let key = SecretKey {
        namespace: namespace.to_owned(),
        name: reference.name.clone(),
        key: reference.key.as_deref().unwrap_or("token").to_owned(),
    };
    let lookup = state.secrets.get(&state.client, &key).await.map_err(|error| match error {
        SecretError::Unavailable(_) => reply::unavailable(error.to_string()),
        SecretError::Missing | SecretError::NoKey(_) => reply::internal(error.to_string()),
    })?;
    // A configured but blank token never admits a blank credential (nor, for generic, none).
    if lookup.value.is_empty() {
        return Err(reply::internal(format!("Secret {}: key {:?} is empty", key.name, key.key)));
    }
    match signature::verify(provider, &lookup.value, headers, body, now) {
        Ok(verified) => Ok(verified),
        Err(error) => match lookup.cached_for {
            Some(_) => match state.secrets.recheck(&state.client, &key).await {
                Some(fresh) if fresh != lookup.value => signature::verify(provider, &fresh, headers, body, now)
                    .map_err(|e| reply::unauthorized(e.to_string())),
                _ => Err(reply::unauthorized(error.to_string())),
            },
            None => Err(reply::unauthorized(error.to_string())),
        },
    }
}

/// Target applications found in the cache, and whether every named target was there.
struct CachedTargets {
    applications: Vec<GitOpsApplication>,
    complete: bool,
}

fn cached_targets(state: &EndpointState, namespace: &str, webhook: &Webhook) -> CachedTargets {
    let mut found: BTreeMap<String, GitOpsApplication> = BTreeMap::new();
    let mut complete = true;
    for target in &webhook.spec.targets {
        if let Some(name) = &target.name {
            match state.applications.get(&ObjectRef::new(name).within(namespace)) {
                Some(app) => {
                    found.insert(name.clone(), (*app).clone());
                }
                None => complete = false,
            }
        }
        if let Some(selector) = &target.selector {
            match Selector::try_from(selector.clone()) {
                Ok(selector) => {
                    for app in state.applications.state_filter(|app| {
                        app.namespace().as_deref() == Some(namespace) && selector.matches(app.labels())
                    }) {
                        found.insert(app.name_any(), (*app).clone());
                    }
                }
                Err(_) => complete = false,
            }
        }
    }
    CachedTargets { applications: found.into_values().collect(), complete }
}

fn validate_all(webhook: &Webhook, targets: &[GitOpsApplication], params: &TriggerParams) -> Result<(), String> {
    targets.iter().try_for_each(|app| validate(webhook, app, params))
}

/// Target applications read from the API server.
async fn read_targets(
    state: &EndpointState,
    namespace: &str,
    webhook: &Webhook,
) -> Result<Vec<GitOpsApplication>, Response> {
    let api: Api<GitOpsApplication> = Api::namespaced(state.client.clone(), namespace);
    let mut found: BTreeMap<String, GitOpsApplication> = BTreeMap::new();
    for target in &webhook.spec.targets {
        if let Some(name) = &target.name {
            match api.get_opt(name).await {
                Ok(Some(app)) => {
                    found.insert(app.name_any(), app);
                }
                Ok(None) => {}
                Err(error) => return Err(reply::unavailable(error.to_string())),
            }
        }
        if let Some(selector) = &target.selector {
            // kube-core's Selector, as the API server reads it; a selector it cannot express
            // (an unknown operator, In without values) selects nothing rather than guessing.
            let selector = kube::core::Selector::try_from(selector.clone()).map_err(|e| {
                reply::internal(format!("Webhook target selector is invalid ({}); fix spec.targets", e.0))
            })?;
            let params = ListParams::default().labels_from(&selector);
            match api.list(&params).await {
                Ok(list) => found.extend(list.items.into_iter().map(|app| (app.name_any(), app))),
                Err(error) => return Err(reply::unavailable(error.to_string())),
            }
        }
    }
    Ok(found.into_values().collect())
}

/// Does the event concern this application? Pushes match repository and branch/tag.
fn concerns(event: &ProviderEvent, app: &GitOpsApplication) -> bool {
    let ProviderEvent::Push { repo_urls, reference, .. } = event else { return true };
    let wanted = &app.spec.source.reference;
    let ref_matches = match reference {
        RefName::Branch(branch) => wanted.branch.as_deref() == Some(branch.as_str()),
        RefName::Tag(tag) => wanted.tag.as_deref() == Some(tag.as_str()) || wanted.semver.is_some(),
        RefName::Other(_) => false,
    };
    ref_matches && crate::source::url::repo_matches(&app.spec.source.repo_url, repo_urls)
}

fn ignored_reason(event: &ProviderEvent) -> String {
    match event {
        ProviderEvent::Push { reference: RefName::Branch(branch), .. } => {
            format!("push to branch {branch:?} concerns no target application")
        }
        ProviderEvent::Push { reference: RefName::Tag(tag), .. } => {
            format!("push of tag {tag:?} concerns no target application")
        }
        ProviderEvent::Push { reference: RefName::Other(other), .. } => {
            format!("push to {other:?} concerns no target application")
        }
        _ => "no target application".into(),
    }
}

/// Variables must exist in the application (placeholders or workload env vars) and be allowed;
/// restart targets must be workloads of the application.
fn validate(webhook: &Webhook, app: &GitOpsApplication, params: &TriggerParams) -> Result<(), String> {
    let status = app.status.clone().unwrap_or_default();
    let allowed: Vec<&String> = match &webhook.spec.allowed_variables {
        Some(list) => status.variable_names.iter().filter(|n| list.contains(n)).collect(),
        None => status.variable_names.iter().collect(),
    };
    for name in params.variables.keys() {
        if !allowed.contains(&name) {
            return Err(format!(
                "variable {name:?} cannot be set on application {:?} (a call never sets a variable the manifests do not use, nor one that sets an apiVersion, kind, metadata.name or metadata.namespace); allowed: {}",
                app.name_any(),
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                }
            ));
        }
    }
    if let Some(RolloutRestart::Workloads(workloads)) = &params.rollout_restart {
        let valid: Vec<String> = status
            .inventory
            .iter()
            .filter(|e| {
                crate::deploy::health::is_workload(e.api_version.split('/').next().unwrap_or_default(), &e.kind)
            })
            .map(|e| format!("{}/{}", e.kind.to_ascii_lowercase(), e.name))
            .collect();
        for workload in workloads {
            let wanted = workload.to_string();
            if !valid.contains(&wanted) {
                return Err(format!(
                    "rollout-restart: {wanted} is not a workload of application {:?}; valid: {}",
                    app.name_any(),
                    if valid.is_empty() { "none".to_owned() } else { valid.join(", ") }
                ));
            }
        }
    }
    Ok(())
}

fn restart_entries(params: &TriggerParams) -> Vec<RestartTarget> {
    match &params.rollout_restart {
        None => Vec::new(),
        Some(RolloutRestart::All) => vec![RestartTarget::All],
        Some(RolloutRestart::Workloads(workloads)) => workloads.iter().cloned().map(RestartTarget::Workload).collect(),
    }
}
