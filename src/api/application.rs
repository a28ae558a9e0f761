//! `GitOpsApplication`: a set of manifests in Git, the variables they are rendered with, and how and when they deploy.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, DurationString, SecretReference};

/// Deploys the manifests found at a Git reference into the cluster and keeps them there.
///
/// Manifests are rendered with `${VAR}` placeholders (Flux-compatible), applied with
/// server-side apply and pruned by inventory. Webhook calls can redeploy with new variables
/// and rolling restarts, inside the change windows the application allows.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tugboat.dev",
    version = "v1alpha1",
    kind = "GitOpsApplication",
    doc = "Deploys the manifests found at a Git reference and keeps them there; webhook calls redeploy it with new variables and rolling restarts, inside its change windows.",
    namespaced,
    status = "GitOpsApplicationStatus",
    shortname = "gapp",
    category = "tugboat",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Last deploy","type":"string","jsonPath":".status.deployments[-1:].result"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitOpsApplicationSpec {
    /// Where the manifests come from.
    pub source: GitSource,

    /// Namespace for namespaced objects that name none. Defaults to the application's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub target_namespace: Option<String>,

    /// Apply as this ServiceAccount of the application's namespace (impersonation), so the
    /// application can only deploy what that account's RBAC allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub service_account_name: Option<String>,

    /// How new revisions are noticed: by webhook calls or by polling.
    #[serde(default)]
    pub updates: UpdatePolicy,

    /// Default values for `${VAR}` placeholders. Webhook calls may override them; overrides are
    /// kept in `status.variables` and win over these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[_A-Za-z][_A-Za-z0-9]*$'))").message("variable names must match ^[_A-Za-z][_A-Za-z0-9]*$"))]
    pub variables: BTreeMap<String, String>,

    /// When true, a `${VAR}` with no value and no default is an error instead of an empty string.
    #[serde(default)]
    pub strict_variables: bool,

    /// Delete objects that left Git (only objects this application created), and delete all of
    /// them when the application itself is deleted.
    #[serde(default)]
    pub prune: bool,

    /// When deployments and restarts may happen. Empty: always (unless the operator sets a default window).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub change_windows: Vec<ChangeWindow>,

    /// How long to wait for changed workloads to roll out before the deployment counts as failed.
    #[serde(default = "default_health_timeout")]
    pub health_timeout: DurationString,

    /// Stop deploying (webhook calls are still recorded and run once resumed).
    #[serde(default)]
    pub suspend: bool,

    /// Health rules for kinds whose status the built-in rules (kstatus) do not read well: CEL
    /// expressions per kind, in the shape of Flux's `healthCheckExprs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub health_checks: Vec<HealthCheck>,

    /// Applications (of this namespace unless `namespace` is set) that must be Ready and
    /// Healthy at their current revision before this one deploys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub depends_on: Vec<Dependency>,

    /// What a resync does when live objects drifted from Git: `Correct` re-applies them (and
    /// records what it corrected), `Report` only reports the drift.
    #[serde(default)]
    pub drift: DriftPolicy,

    /// Restart the workloads that use a ConfigMap or Secret whose content changed: in a
    /// deployment, or (for ones annotated `tugboat.dev/watch: "true"`) in the cluster.
    #[serde(default)]
    pub restart_on_config_change: bool,
}

/// A health rule for one kind: CEL expressions over the live object (`self`), each a bool.
/// The first that holds of `failed`, `current`, `inProgress` decides; none holding means in
/// progress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// API version of the kind, e.g. `cert-manager.io/v1`.
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// The kind, e.g. `Certificate`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Holds when the object is healthy, e.g. `self.status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')`.
    #[schemars(length(min = 1, max = 1024))]
    pub current: String,
    /// Holds when the object failed and will not recover by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub failed: Option<String>,
    /// Holds while the object is still on its way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub in_progress: Option<String>,
}

/// Another application this one waits for.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    /// Name of the GitOpsApplication.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Its namespace. Default: this application's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
}

/// What a resync does with drift.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DriftPolicy {
    /// Re-apply what drifted (as Argo CD's self-heal), recording what was corrected.
    #[default]
    Correct,
    /// Leave the live objects as they are and report the drift (condition `Drifted`).
    Report,
}

/// One live object that differs from Git on fields tugboat manages.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftedObject {
    /// The object, as `Kind/name` or `Kind/namespace/name`.
    pub object: String,
    /// Field paths that differ, e.g. `spec.replicas` (the first 16).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

fn default_health_timeout() -> DurationString {
    DurationString::new("5m")
}

/// A Git repository, a reference in it and a path below it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.repoURL.startsWith('file://') || !has(self.secretRef)").message("secretRef is not used with file:// repositories"))]
#[x_kube(validation = Rule::new("!(has(self.kustomize) && has(self.helm))").message("set at most one of kustomize and helm"))]
pub struct GitSource {
    /// Repository URL: `https://`, `http://`, `ssh://`, `git@host:path`, or `file://` (only when
    /// the operator runs with `--allow-file-sources`).
    #[serde(rename = "repoURL")]
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^(https?://[^\s]+|ssh://[^\s]+|file:///[^\s]*|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$")
    )]
    pub repo_url: String,

    /// The reference to deploy: exactly one of branch, tag, commit or semver.
    #[serde(rename = "ref")]
    pub reference: GitRef,

    /// Directory of YAML/JSON manifests (read recursively, files sorted), single manifest file,
    /// Kustomize overlay or Helm chart. Default: the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("!self.matches('(^|/)[.][.](/|$)')").message("path must stay inside the repository (no '..')"))]
    pub path: Option<String>,

    /// Secret with credentials, using Flux's key names: `username` + `password`, or
    /// `bearerToken`, or `identity` (SSH private key) + `known_hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,

    /// Build `path` with Kustomize (`kustomize build`), even without a kustomization file
    /// name tugboat recognises. Default: Kustomize when `path` holds `kustomization.yaml`,
    /// `kustomization.yml` or `Kustomization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeBuild>,

    /// Render `path` as a Helm chart (`helm template`). Default: Helm when `path` holds
    /// `Chart.yaml` (and no kustomization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmBuild>,
}

/// Kustomize options. None yet: the presence of the field forces a Kustomize build.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeBuild {}

/// How a Helm chart is rendered (`helm template` semantics; hooks: see the reference).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmBuild {
    /// The release name the chart sees as `.Release.Name`. Default: the application's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 53), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub release_name: Option<String>,

    /// Values merged over the chart's `values.yaml` and `valuesFiles` (these win). String
    /// values may hold `${VAR}` placeholders, filled before the chart is rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub values: Option<serde_json::Value>,

    /// Values files, relative to `path` and inside the repository, merged in order over the
    /// chart's `values.yaml`; `${VAR}` placeholders in them are filled first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 1024)))]
    #[x_kube(validation = Rule::new("self.all(f, !f.startsWith('/') && !f.matches('(^|/)[.][.](/|$)'))").message("values files must be relative and stay inside the repository (no '..')"))]
    pub values_files: Vec<String>,

    /// Render the chart's `crds/` directory too. Default: true.
    #[serde(default = "default_true", rename = "includeCRDs")]
    pub include_crds: bool,
}

fn default_true() -> bool {
    true
}

fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Exactly one of branch, tag, commit or semver.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.branch), has(self.tag), has(self.commit), has(self.semver)].filter(x, x).size() == 1").message("exactly one of branch, tag, commit or semver must be set"))]
pub struct GitRef {
    /// Follow the head of this branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[^\s~^:?*\[\\]+$"))]
    pub branch: Option<String>,
    /// Deploy this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[^\s~^:?*\[\\]+$"))]
    pub tag: Option<String>,
    /// Deploy this commit (full or abbreviated SHA-1, lower-case hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{7,40}$"))]
    pub commit: Option<String>,
    /// Deploy the newest tag matching this semver range, e.g. `>=1.2.0 <2.0.0` or `~1.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub semver: Option<String>,
}

/// How new revisions are noticed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePolicy {
    /// `Webhook`: deploy when a Webhook calls (and correct drift every interval); `Polling`: also
    /// look for new revisions every interval.
    #[serde(default)]
    pub mechanism: UpdateMechanism,
    /// Polling period; with `Webhook` it is the drift-correction period. At least 5s.
    #[serde(default = "default_interval")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('5s')").message("interval must be at least 5s"))]
    pub interval: DurationString,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        Self { mechanism: UpdateMechanism::default(), interval: default_interval() }
    }
}

fn default_interval() -> DurationString {
    DurationString::new("5m")
}

/// Portainer's "GitOps updates" mechanism.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum UpdateMechanism {
    #[default]
    Webhook,
    Polling,
}

/// A recurring time range that allows or denies deployments.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChangeWindow {
    /// `allow` opens the window during its range; `deny` closes it and wins over allow.
    pub kind: WindowKind,
    /// When the range starts: five-field cron (minute hour day-of-month month day-of-week), in `timeZone`.
    #[schemars(length(min = 9, max = 200), regex(pattern = r"^\s*(\S+\s+){4}\S+\s*$"))]
    #[x_kube(validation = Rule::new(CRON_RULE).message("schedule must be five cron fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week (0-7 or SUN-SAT)"))]
    pub schedule: String,
    /// How long the range lasts after each start, e.g. `4h`.
    pub duration: DurationString,
    /// IANA time zone the schedule is read in, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*)*$"))]
    pub time_zone: String,
    /// What a closed window holds back. Default: both.
    #[serde(default = "default_gates")]
    #[schemars(length(min = 1, max = 2))]
    #[x_kube(validation = Rule::new("self.all(g, self.exists_one(h, h == g))").message("gates must not repeat"))]
    pub gates: Vec<WindowGate>,
}

/// Each cron field checked for its range; the operator parses the schedule again and stalls
/// the application with a clear message if the parser disagrees.
const CRON_RULE: &str = concat!(
    "self.trim().split(' ').filter(f, f != '').size() == 5 && ",
    "self.trim().split(' ').filter(f, f != '')[0].matches('^(\\\\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]+)?(,(\\\\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]+)?)*$') && ",
    "self.trim().split(' ').filter(f, f != '')[1].matches('^(\\\\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]+)?(,(\\\\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]+)?)*$') && ",
    "self.trim().split(' ').filter(f, f != '')[2].matches('^(\\\\*|\\\\?|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]+)?(,(\\\\*|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]+)?)*$') && ",
    "self.trim().split(' ').filter(f, f != '')[3].matches('^(?i)(\\\\*|(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[0-9]+)?(,(\\\\*|(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[0-9]+)?)*$') && ",
    "self.trim().split(' ').filter(f, f != '')[4].matches('^(?i)(\\\\*|\\\\?|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[0-9]+)?(,(\\\\*|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[0-9]+)?)*$')"
);

fn default_time_zone() -> String {
    "UTC".to_owned()
}

fn default_gates() -> Vec<WindowGate> {
    vec![WindowGate::Restart, WindowGate::Apply]
}

/// Whether a window allows or denies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    Allow,
    Deny,
}

/// What a closed change window holds back.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum WindowGate {
    /// Rolling restarts asked for by `rollout-restart`.
    Restart,
    /// Applying manifests (new revisions, new variables, drift correction).
    Apply,
}

/// What tugboat observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitOpsApplicationStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled, Deferred and Healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The revision live in the cluster, e.g. `main@sha1:3f2a…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// The revision of the latest attempt, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// Digest of revision, variables and spec of the last successful apply; equal inputs skip all work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_fingerprint: Option<String>,
    /// Digest of the source (repoURL, ref, secretRef) of the last apply. The Git cache is shared
    /// by all applications: a cached commit is used for an application only once its own
    /// credentials read this source, so another tenant's private commits are never served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_source: Option<String>,
    /// The last `tugboat.dev/reconcile-requested-at` annotation value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// Variable overrides set by webhook calls; they persist until a later call changes them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Image tag set by a webhook call's `tag=`; it persists until a later call changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
    /// Variables a webhook call may set: the placeholders of the last rendered revision and the
    /// env vars of its workload containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variable_names: Vec<String>,
    /// A trigger waiting to run: queued, or held back by a change window until `nextWindowStart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_trigger: Option<TriggerRecord>,
    /// The last trigger that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger: Option<TriggerRecord>,
    /// Every object the application applied (what pruning may delete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryEntry>,
    /// The most recent deployments, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<DeploymentRecord>,
    /// Live objects that differ from Git, as the last resync found them (the first 32).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drifted: Vec<DriftedObject>,
}

/// A webhook call recorded on an application.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerRecord {
    /// Identifier returned to the caller as `triggerId`.
    pub id: String,
    /// Increases with every recorded call; the controller has handled a trigger when
    /// `status.lastTrigger.sequence` reached it.
    #[serde(default)]
    pub sequence: i64,
    /// When the call arrived.
    pub at: Time,
    /// Which Webhook and provider it came through, e.g. `Webhook/ci (github)`.
    pub source: String,
    /// Variables the call set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Workloads to restart: `all` or `kind/name` entries (`deployment/web`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout_restart: Vec<RestartTarget>,
    /// Image tag for the workload containers, from `tag=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Ids of later calls merged into this one while it waited (the first 20; see `coalescedCount`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coalesced_ids: Vec<String>,
    /// How many later calls were merged into this one, listed in `coalescedIds` or not.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub coalesced_count: i64,
    /// May this trigger run outside the change window (the Webhook allows it and the call asked)?
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub override_window: bool,
    /// For a held trigger: when the change window next opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window_start: Option<Time>,
}

/// One object the application applied.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// API version of the object, e.g. `apps/v1`.
    pub api_version: String,
    /// Kind of the object, e.g. `Deployment`.
    pub kind: String,
    /// Namespace of the object; absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the object.
    pub name: String,
}

/// One deployment: an apply (and restarts) of one revision with one set of variables.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    /// Identifier of the deployment (`${deploy_id}` in outgoing webhooks): short SHA and start time.
    pub id: String,
    /// Revision deployed, e.g. `main@sha1:…`.
    pub revision: String,
    /// The webhook call (`triggerId` of its 202 answer) that started this deployment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    /// When the deployment started.
    pub started_at: Time,
    /// When it finished; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// How it ended: `Running`, `Succeeded` or `Failed`.
    pub result: DeploymentResult,
    /// What happened, in one sentence: what was applied, pruned or restarted, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Workloads restarted, as `kind/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<String>,
    /// Why workloads were restarted when not by a call, e.g.
    /// `Deployment/web: ConfigMap/settings changed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_causes: Vec<String>,
    /// Drift this deployment corrected (a resync with `drift: Correct`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrected: Vec<DriftedObject>,
    /// Where an unfinished deployment stands; absent once it finished. The phase is persisted,
    /// so no reconcile waits: each one looks at what the phase waits for and requeues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DeploymentPhase>,
    /// What the phase waits for: the OutgoingWebhooks asked (gates) or the workloads rolling out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub awaiting: Vec<InventoryEntry>,
    /// When waiting gives up: the rollout's `healthTimeout`, or for gates the time by which an
    /// asked hook must show the delivery in its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Time>,
    /// The revision that was live when the deployment started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
    /// The chart's `pre-install`/`pre-upgrade` hooks of this deployment completed: what is
    /// applied again after a restart skips them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pre_hooks_done: bool,
    /// The chart has `post-install`/`post-upgrade` hooks still to run once the rest rolled out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub post_hooks_pending: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The steps of a deployment that take time. A deployment found `Applying` at the start of a
/// reconcile was interrupted (the operator stopped) and is applied again under its own id.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeploymentPhase {
    /// `BeforeDeployment` hooks were asked; nothing is applied until every one succeeds.
    AwaitingGates,
    /// Fetching, rendering and applying.
    Applying,
    /// Applied; the changed and restarted workloads are rolling out.
    RollingOut,
    /// Rolled out; `AfterDeployment` hooks were asked.
    AwaitingAfterGates,
    /// The chart's `pre-install`/`pre-upgrade` hooks are applied; nothing else is applied
    /// until their Jobs complete.
    RunningPreHooks,
    /// Rolled out; the chart's `post-install`/`post-upgrade` hooks are applied and their Jobs
    /// are awaited.
    RunningPostHooks,
}

/// How a deployment ended (or that it has not yet).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeploymentResult {
    Running,
    Succeeded,
    Failed,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// What a call restarts (`rollout-restart=`): every workload of the application, or one.
/// Written as `all` or lower-case `kind/name` (`deployment/web`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RestartTarget {
    All,
    Workload(WorkloadRef),
}

/// One workload, by kind and name (in the application's target namespace).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

/// The workload kinds with a rollout: what tugboat restarts and waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
    StatefulSet,
}

impl WorkloadKind {
    /// The kind as Kubernetes names it (`Deployment`); `None` for other kinds.
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Deployment" => Some(Self::Deployment),
            "DaemonSet" => Some(Self::DaemonSet),
            "StatefulSet" => Some(Self::StatefulSet),
            _ => None,
        }
    }

    /// Lower case, as restart lists write it.
    pub fn lower(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::DaemonSet => "daemonset",
            Self::StatefulSet => "statefulset",
        }
    }
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.lower(), self.name)
    }
}

impl std::fmt::Display for RestartTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Workload(workload) => workload.fmt(f),
        }
    }
}

impl From<RestartTarget> for String {
    fn from(target: RestartTarget) -> String {
        target.to_string()
    }
}

impl TryFrom<String> for RestartTarget {
    type Error = String;

    /// Reads what [`Display`](std::fmt::Display) writes (kinds in lower case).
    fn try_from(entry: String) -> Result<Self, String> {
        if entry == "all" {
            return Ok(Self::All);
        }
        let kind = match entry.split_once('/') {
            Some(("deployment", _)) => WorkloadKind::Deployment,
            Some(("daemonset", _)) => WorkloadKind::DaemonSet,
            Some(("statefulset", _)) => WorkloadKind::StatefulSet,
            _ => return Err(format!("{entry:?} is not all or deployment|daemonset|statefulset/<name>")),
        };
        let name = entry.split_once('/').map(|(_, name)| name.to_owned()).unwrap_or_default();
        Ok(Self::Workload(WorkloadRef { kind, name }))
    }
}

impl JsonSchema for RestartTarget {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RestartTarget".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}
