//! `Webhook`: an incoming trigger URL that redeploys applications, optionally signed by a Git or registry provider.

use std::collections::BTreeMap;

/// Prefix of every trigger path, `status.webhookPath` (Portainer-compatible).
pub const PATH_PREFIX: &str = "/api/stacks/webhooks/";

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, LabelSelector, SecretKeyReference};

/// An incoming trigger endpoint: a call to `status.webhookPath` redeploys the target
/// applications, with variables, image tag and rolling restarts taken from the call.
///
/// The random path is a capability; providers with signatures or tokens are checked too.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tugboat.dev",
    version = "v1alpha1",
    kind = "Webhook",
    doc = "An incoming trigger endpoint: a POST to status.webhookPath redeploys the target applications, with variables, image tag and rolling restarts taken from the call.",
    namespaced,
    status = "WebhookStatus",
    shortname = "wh",
    category = "tugboat",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".status.webhookPath"}"#,
    printcolumn = r#"{"name":"Last call","type":"integer","jsonPath":".status.lastDelivery.httpStatus"}"#,
    printcolumn = r#"{"name":"Last delivery","type":"date","jsonPath":".status.lastDelivery.at"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.provider in ['generic', 'dockerhub'] || has(self.secretRef)").message("secretRef is required for this provider (only generic and dockerhub work without one)"))]
pub struct WebhookSpec {
    /// Who calls and how the call is authenticated.
    #[serde(default)]
    pub provider: WebhookProvider,

    /// Secret holding the HMAC secret or token (key defaults to `token`). Required for every
    /// provider but `generic` and `dockerhub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyReference>,

    /// GitOpsApplications in this namespace that a call redeploys.
    #[schemars(length(min = 1, max = 64))]
    pub targets: Vec<WebhookTarget>,

    /// When set, the only variables a call may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 128, "pattern": "^[_A-Za-z][_A-Za-z0-9]*$"}))]
    pub allowed_variables: Option<Vec<String>>,

    /// Variables taken from the verified payload: name → JSONPath, e.g.
    /// `SERVICE_TAG: $.push_data.tag` for Docker Hub.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 512, "pattern": "^\\$"}))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[_A-Za-z][_A-Za-z0-9]*$'))").message("keys must be variable names matching ^[_A-Za-z][_A-Za-z0-9]*$"))]
    pub variables_from_payload: BTreeMap<String, String>,

    /// May a call force an action outside the change window (`?override-window=true`)?
    #[serde(default)]
    pub allow_window_override: bool,

    /// For providers that sign only the body (`github`, `gitea`, `bitbucket`, `standard`): the
    /// query parameters a call may still carry, outside the signature. Without them listed,
    /// `tag`, `rollout-restart` and `override-window` in the query answer 400, and so does a
    /// variable in the query that `allowedVariables` does not list. Other providers ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub allow_query_parameters: Vec<QueryParameter>,
}

/// A query parameter that is not a variable (see `allowQueryParameters`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum QueryParameter {
    /// `?tag=`: the image tag of the application's workloads.
    #[serde(rename = "tag")]
    Tag,
    /// `?rollout-restart=`: workloads to restart.
    #[serde(rename = "rollout-restart")]
    RolloutRestart,
    /// `?override-window=true` (also needs `allowWindowOverride`).
    #[serde(rename = "override-window")]
    OverrideWindow,
}

impl QueryParameter {
    /// As written in the query.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tag => "tag",
            Self::RolloutRestart => "rollout-restart",
            Self::OverrideWindow => "override-window",
        }
    }
}

/// Providers tugboat verifies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookProvider {
    /// Any caller that knows the URL (Portainer-compatible).
    #[default]
    Generic,
    /// GitHub, `X-Hub-Signature-256`.
    Github,
    /// GitLab, `X-Gitlab-Token`.
    Gitlab,
    /// Bitbucket, `X-Hub-Signature`.
    Bitbucket,
    /// Gitea and Forgejo, `X-Gitea-Signature`.
    Gitea,
    /// Docker Hub (no signature: the URL is the secret).
    Dockerhub,
    /// Harbor, `Authorization` header.
    Harbor,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    Standard,
}

impl WebhookProvider {
    /// Providers whose signature (an HMAC of the body) leaves the query unsigned: anyone who
    /// sees one signed delivery could resend it with a query of their own. Token providers
    /// (`gitlab`, `harbor`, `generic` with a `secretRef`) send the secret itself, so the query
    /// is as trusted as the rest of the call; `generic` and `dockerhub` have only the URL.
    pub fn signs_body_only(self) -> bool {
        matches!(self, Self::Github | Self::Gitea | Self::Bitbucket | Self::Standard)
    }
}

/// One application by name, or every application matching a label selector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) != has(self.selector)").message("set exactly one of name or selector"))]
pub struct WebhookTarget {
    /// Name of a GitOpsApplication in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// Label selector over the GitOpsApplications of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// What tugboat observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStatus {
    /// The `metadata.generation` this status was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the path is assigned, the secret and the target applications exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The path to call: `/api/stacks/webhooks/<uuid>`, derived from the Webhook's uid with the
    /// operator's secret key (stable for the object's life; a path written here by anyone else
    /// is never served and is overwritten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// The last call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<DeliverySummary>,
}

/// A short account of one call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySummary {
    /// Identifier of the call.
    pub id: String,
    /// When the call arrived.
    pub at: Time,
    /// What happened, e.g. `accepted`, `ignored: push to another branch`, `rejected: bad signature`.
    pub result: String,
    /// HTTP status code of the answer.
    pub http_status: i32,
}
