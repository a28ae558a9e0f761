//! `OutgoingWebhook`: calls other systems on deployment events, optionally waiting for them or gating deployments.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::common::{Condition, DurationString, LabelSelector, SecretKeyReference};
use super::webhook::DeliverySummary;

/// Calls a URL on deployment events: to tell another system (Humanitec, Puppet Pipelines), or
/// to ask it and wait for the answer (Spinnaker-style), or to gate deployments on it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tugboat.dev",
    version = "v1alpha1",
    kind = "OutgoingWebhook",
    doc = "Calls an HTTP endpoint when applications in its namespace are triggered, deferred or deployed, and can gate deployments on the answer.",
    namespaced,
    status = "OutgoingWebhookStatus",
    shortname = "owh",
    category = "tugboat",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Gate","type":"string","jsonPath":".spec.gate"}"#,
    printcolumn = r#"{"name":"Last delivery","type":"string","jsonPath":".status.lastDelivery.result"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingWebhookSpec {
    /// URL to call; may hold `${...}` template variables such as `${app_id}`.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
    /// HTTP method.
    #[serde(default)]
    pub method: HttpMethod,
    /// Extra request headers; values may hold template variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON payload template (strings may hold template variables). Default: the event itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub payload: Option<serde_json::Value>,
    /// `json`, or `cloudevents` (CloudEvents 1.0, structured mode).
    #[serde(default)]
    pub format: PayloadFormat,
    /// Secret whose key (default `secret`) signs requests with Standard Webhooks headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyReference>,
    /// Events that cause a call.
    #[schemars(length(min = 1, max = 6))]
    pub triggers: Vec<EventType>,
    /// Which applications' events (same namespace). Empty: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<LabelSelector>,
    /// Whether deployments wait on this hook.
    #[serde(default)]
    pub gate: HookGate,
    /// Poll a status URL after the call until it reports success, cancellation or failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_completion: Option<WaitForCompletion>,
    /// Retries of failed calls.
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn any_json(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// HTTP methods an outgoing call may use.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum HttpMethod {
    #[default]
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
    #[serde(rename = "GET")]
    Get,
}

/// Body format of outgoing calls.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    #[default]
    Json,
    Cloudevents,
}

/// Events tugboat emits.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum EventType {
    #[serde(rename = "trigger.received")]
    TriggerReceived,
    #[serde(rename = "deployment.deferred")]
    DeploymentDeferred,
    #[serde(rename = "deployment.started")]
    DeploymentStarted,
    #[serde(rename = "deployment.finished")]
    DeploymentFinished,
    #[serde(rename = "application.created")]
    ApplicationCreated,
    #[serde(rename = "application.deleted")]
    ApplicationDeleted,
    /// A resync found live objects that differ from Git (`spec.drift`).
    #[serde(rename = "application.drifted")]
    ApplicationDrifted,
}

/// Whether deployments wait on a hook.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum HookGate {
    /// Notify only.
    #[default]
    None,
    /// Must succeed before anything is applied; failure or timeout fails the deployment.
    BeforeDeployment,
    /// Runs after the rollout is healthy; failure marks the deployment failed.
    AfterDeployment,
}

/// Spinnaker-style completion polling.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.statusUrlFrom != 'ResponseField' || has(self.statusUrlJsonPath)").message("statusUrlJsonPath is required when statusUrlFrom is ResponseField"))]
#[x_kube(validation = Rule::new("!has(self.pollInterval) || duration(self.pollInterval) >= duration('1s')").message("pollInterval must be at least 1s"))]
#[x_kube(validation = Rule::new("!has(self.timeout) || (duration(self.timeout) >= duration('1s') && duration(self.timeout) <= duration('24h'))").message("timeout must be between 1s and 24h"))]
pub struct WaitForCompletion {
    /// Where the status URL comes from.
    pub status_url_from: StatusUrlFrom,
    /// JSONPath to the status URL in the call's response, with `ResponseField`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\$"))]
    pub status_url_json_path: Option<String>,
    /// JSONPath to the status value in each poll's response.
    #[schemars(regex(pattern = r"^\$"))]
    pub status_json_path: String,
    /// Status values that mean success.
    #[schemars(length(min = 1))]
    pub success: Vec<String>,
    /// Status values that mean the run was cancelled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canceled: Vec<String>,
    /// Status values that mean the run failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminal: Vec<String>,
    /// JSONPath to a progress message recorded in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\$"))]
    pub progress_json_path: Option<String>,
    /// Poll a status URL on another origin (scheme, host, port) than the call. Off by default:
    /// polls carry the hook's headers and signature, so a receiver could otherwise send them to
    /// any host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_other_origins: bool,
    /// Time between polls: at least 1s.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: DurationString,
    /// Give up (and fail) after this long: 1s to 24h. A gate waits this long at most (without
    /// holding a work slot: other deployments go on meanwhile).
    #[serde(default = "default_wait_timeout")]
    pub timeout: DurationString,
}

fn default_poll_interval() -> DurationString {
    DurationString::new("10s")
}

fn default_wait_timeout() -> DurationString {
    DurationString::new("30m")
}

/// Where the status URL of a long-running call comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StatusUrlFrom {
    /// GET the URL that was called.
    SameUrl,
    /// The `Location` header of the response.
    LocationHeader,
    /// A field of the JSON response (`statusUrlJsonPath`).
    ResponseField,
}

/// Exponential backoff with jitter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: i32,
    /// Wait before the second attempt; doubles each time.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: DurationString,
    /// Longest wait between attempts.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: DurationString,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

fn default_max_attempts() -> i32 {
    8
}

fn default_initial_backoff() -> DurationString {
    DurationString::new("5s")
}

fn default_max_backoff() -> DurationString {
    DurationString::new("30m")
}

/// What tugboat observed and sent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingWebhookStatus {
    /// The `metadata.generation` this status was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the spec is valid and the last delivery did not fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The last delivery, for printer columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<DeliverySummary>,
    /// The last 20 deliveries, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub deliveries: Vec<DeliveryRecord>,
    /// Deliveries not finished yet (retrying or waiting for completion), kept here so a
    /// restarted operator resumes them with the same `webhook-id` instead of starting over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub pending: Vec<PendingDelivery>,
}

/// An event as outgoing webhooks see it: the default payload, and the template variables
/// (`${event}`, `${app_id}`, ...; the application's variables are under `variables`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EventData {
    pub event: EventType,
    /// RFC 3339 time of the occurrence.
    pub triggered_at: String,
    /// Who caused it: `Webhook/<name> (<provider>)` (a webhook call), `git` (a new commit, a spec
    /// change or a drift check) or `kubernetes` (the application was created or deleted).
    pub triggered_by: String,
    /// The application's name.
    pub app_id: String,
    /// The application's namespace.
    pub env_id: String,
    /// The deployment's id (`status.deployments[].id` of the application).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    /// The revision being (or just) deployed, e.g. `main@sha1:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The revision that was live before this deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
    /// `succeeded` or `failed` for `deployment.finished`; `deferred`, `started`, `received`,
    /// `created`, `deleted`, `drifted` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What happened, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Workloads restarted (`deployment/web`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<String>,
    /// The application's variables in force (spec defaults overridden by webhook calls).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// For `application.drifted`: the objects that differ from Git and their field paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drifted: Vec<super::DriftedObject>,
}

/// A delivery in progress, persisted before each attempt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingDelivery {
    /// The `webhook-id`, derived from the hook, the application, the event and its occurrence.
    pub id: String,
    /// Attempts started so far (an attempt counts once it may have been sent).
    pub attempt: i32,
    /// When the next attempt or poll is due.
    pub next_at: Time,
    /// The status URL being polled, once the call succeeded and `waitForCompletion` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
    /// When waiting for completion gives up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<Time>,
    /// The last progress reported by the status URL (`progressJsonPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// The event being delivered.
    pub data: EventData,
}

/// One attempt to deliver one event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    /// The `webhook-id`, the same on every retry.
    pub id: String,
    /// The event delivered.
    pub event: EventType,
    /// The application the event is about.
    pub application: String,
    /// When the attempt started.
    pub at: Time,
    /// Which attempt this was (1 for the first).
    pub attempt: i32,
    /// HTTP status code of the answer; absent when no answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// How long the attempt took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// How the attempt (or poll) ended.
    pub result: DeliveryResult,
    /// Why the attempt failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Progress reported while waiting for completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// How one attempt to deliver (or one poll of its status URL) ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryResult {
    /// The receiver answered 2xx (and, waiting for completion, reported success).
    Succeeded,
    /// Given up: a final HTTP answer, the last attempt, a timeout, or the hook's configuration.
    Failed,
    /// This attempt failed; another follows.
    Retrying,
    /// Accepted; waiting for the status URL to report completion.
    Waiting,
    /// The status URL reported a canceled state.
    Canceled,
    /// The status URL reported a terminal (failed) state.
    Terminal,
}

impl DeliveryResult {
    /// The name status and metrics show.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Retrying => "retrying",
            Self::Waiting => "waiting",
            Self::Canceled => "canceled",
            Self::Terminal => "terminal",
        }
    }

    /// Is the delivery over (no retry or poll follows)?
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Retrying | Self::Waiting)
    }
}

impl std::fmt::Display for DeliveryResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
