//! The I/O of a deployment against the API server: discovery, dry run, apply, restart, prune, health.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use kube::{Client, Config};
use serde_json::Value;

use super::RESTART_FIELD_MANAGER;
use super::error::DeployError;
use super::health::{self, Rollout};
use super::plan::{Owner, PlannedObject};
use super::restart::{self, RestartSelection};
use crate::api::InventoryEntry;

/// Applies planned sets; shares discovery and impersonating clients between deployments.
#[derive(Clone)]
pub struct Deployer {
    client: Client,
    config: Config,
    kinds: Arc<Mutex<HashMap<GroupVersionKind, (ApiResource, bool)>>>,
    impersonating: Arc<Mutex<HashMap<String, Client>>>,
}

/// Everything one deployment needs.
pub struct DeployRequest<'a> {
    pub owner: &'a Owner,
    /// Namespace for namespaced objects that name none.
    pub default_namespace: &'a str,
    /// Apply as this ServiceAccount of the owner's namespace.
    pub service_account: Option<&'a str>,
    pub objects: Vec<PlannedObject>,
    pub previous_inventory: &'a [InventoryEntry],
    pub prune: bool,
    pub restart: RestartSelection,
}

/// What a deployment did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub inventory: Vec<InventoryEntry>,
    pub pruned: Vec<String>,
    /// Workloads whose template changed (`Kind/name`).
    pub changed: Vec<String>,
    /// Workloads restarted (`Kind/name`).
    pub restarted: Vec<String>,
    /// Deployments that were asked to restart but are paused.
    pub paused: Vec<String>,
    /// The workloads whose rollout is to be awaited: those whose template changed or that
    /// were restarted.
    pub rolling_out: Vec<InventoryEntry>,
}

struct Resolved {
    object: PlannedObject,
    resource: Option<ApiResource>,
    namespace: Option<String>,
}

impl Deployer {
    pub fn new(client: Client, config: Config) -> Self {
        Self { client, config, kinds: Default::default(), impersonating: Default::default() }
    }

    /// A client acting as the ServiceAccount (impersonation), built once per account.
    fn client_for(&self, namespace: &str, service_account: Option<&str>) -> Result<Client, DeployError> {
        let Some(account) = service_account else { return Ok(self.client.clone()) };
        let user = format!("system:serviceaccount:{namespace}:{account}");
        let mut cache = self.impersonating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = cache.get(&user) {
            return Ok(client.clone());
        }
        let mut config = self.config.clone();
        // No Impersonate-Group: for a ServiceAccount the API server adds its groups itself, and
        // naming groups would need the right to impersonate any group (system:masters too).
        config.auth_info.impersonate = Some(user.clone());
        let client = Client::try_from(config)
            .map_err(|e| DeployError::Impersonation { user: user.clone(), message: e.to_string() })?;
        cache.insert(user, client.clone());
        Ok(client)
    }

    /// Resource and scope of a kind, from a per-kind discovery cache (the operator's own client:
    /// discovery is not something a tenant's RBAC should have to allow).
    async fn resolve_kind(&self, gvk: &GroupVersionKind) -> Result<Option<(ApiResource, bool)>, kube::Error> {
        if let Some(found) = self.kinds.lock().unwrap_or_else(|e| e.into_inner()).get(gvk) {
            return Ok(Some(found.clone()));
        }
        match discovery::pinned_kind(&self.client, gvk).await {
            Ok((resource, capabilities)) => {
                let entry = (resource, capabilities.scope == Scope::Namespaced);
                self.kinds.lock().unwrap_or_else(|e| e.into_inner()).insert(gvk.clone(), entry.clone());
                Ok(Some(entry))
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Dry-runs the whole set, then applies it, restarts and prunes. Never waits for a
    /// rollout: [`Outcome::rolling_out`] names what to look at later ([`Deployer::rollouts`]).
    ///
    /// # Errors
    /// Any object refused by the dry run fails the deployment before anything is applied.
    pub async fn deploy(&self, request: DeployRequest<'_>) -> Result<Outcome, DeployError> {
        let client = self.client_for(&request.owner.namespace, request.service_account)?;
        let mut resolved = self.resolve_all(request.objects, request.default_namespace).await?;
        let namespaces_in_set: BTreeSet<String> =
            resolved.iter().filter(|r| r.object.is_namespace()).map(|r| r.object.name.clone()).collect();

        // 1. Dry run of everything that can be checked now, side by side, while the workloads'
        // generations before the apply are read; the first refusal in file order is reported.
        let manager = request.owner.field_manager();
        let dry_runs: Vec<_> =
            resolved.iter().map(|item| dry_run(&client, item, request.owner, &manager, &namespaces_in_set)).collect();
        let dry_runs = futures::stream::iter(dry_runs).buffered(PARALLEL_REQUESTS).collect::<Vec<_>>();
        let (refusals, before) = tokio::join!(dry_runs, self.workload_generations(&client, &resolved));
        if let Some(refusal) = refusals.into_iter().flatten().next() {
            return Err(refusal);
        }

        // 2. Namespaces and CRDs first; kinds the new CRDs define are resolved once established.
        let mut outcome = Outcome::default();
        for item in resolved.iter().filter(|r| r.object.is_namespace() || r.object.is_crd()) {
            self.apply_one(&client, item, &manager).await?;
        }
        for item in resolved.iter().filter(|r| r.object.is_crd()) {
            self.wait_established(&item.object.name).await?;
        }
        for item in resolved.iter_mut().filter(|r| r.resource.is_none()) {
            let found = self.resolve_new_kind(&item.object.gvk).await?;
            let Some((resource, namespaced)) = found else {
                return Err(unknown_kind(&item.object));
            };
            item.namespace = scoped_namespace(&item.object, namespaced, request.default_namespace);
            item.resource = Some(resource);
        }

        // 3. Everything else, in file order.
        let mut live: HashMap<ObjectKey, Value> = HashMap::new();
        for item in resolved.iter().filter(|r| !r.object.is_namespace() && !r.object.is_crd()) {
            let applied = self.apply_one(&client, item, &manager).await?;
            live.insert(ObjectKey::of(item), applied);
        }
        outcome.inventory = resolved.iter().map(inventory_entry).collect();
        outcome.inventory.sort();

        // 4. Restarts of the selected workloads; changed workloads roll out by themselves.
        restart_and_select(&client, &request.restart, &resolved, &live, &before, &mut outcome).await?;

        // 5. Prune what left Git, if it is provably ours.
        if request.prune {
            let gone = super::plan::to_prune(request.previous_inventory, &outcome.inventory);
            for entry in gone {
                if let Some(pruned) = self.prune_one(&client, request.owner, &entry).await? {
                    outcome.pruned.push(pruned);
                }
            }
        }
        Ok(outcome)
    }

    /// Where each workload's rollout stands, read now (as the account that applied it).
    /// A workload that is gone counts as failed.
    pub async fn rollouts(
        &self,
        owner: &Owner,
        service_account: Option<&str>,
        workloads: &[InventoryEntry],
    ) -> Result<Vec<(String, Rollout)>, DeployError> {
        let client = self.client_for(&owner.namespace, service_account)?;
        let mut states = Vec::with_capacity(workloads.len());
        for entry in workloads {
            states.push((format!("{}/{}", entry.kind, entry.name), self.rollout_of(&client, entry).await?));
        }
        Ok(states)
    }

    async fn rollout_of(&self, client: &Client, entry: &InventoryEntry) -> Result<Rollout, DeployError> {
        let (group, version) = entry.api_version.split_once('/').unwrap_or(("", entry.api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &entry.kind);
        let Some((resource, _)) = self.resolve_kind(&gvk).await.map_err(DeployError::Transport)? else {
            return Ok(Rollout::Failed("its kind is no longer served".into()));
        };
        let api = dynamic_api(client, &resource, entry.namespace.as_deref());
        Ok(match api.get_opt(&entry.name).await.map_err(DeployError::Transport)? {
            Some(live) => health::rollout(&entry.kind, &serde_json::to_value(&live).unwrap_or_default()),
            None => Rollout::Failed("it disappeared during the rollout".into()),
        })
    }

    async fn resolve_all(
        &self,
        objects: Vec<PlannedObject>,
        default_namespace: &str,
    ) -> Result<Vec<Resolved>, DeployError> {
        let crd_kinds: BTreeSet<(String, String)> = objects
            .iter()
            .filter(|o| o.is_crd())
            .filter_map(|o| {
                let spec = &o.value["spec"];
                Some((spec["group"].as_str()?.to_owned(), spec["names"]["kind"].as_str()?.to_owned()))
            })
            .collect();
        let mut resolved = Vec::with_capacity(objects.len());
        for object in objects {
            match self.resolve_kind(&object.gvk).await.map_err(DeployError::Transport)? {
                Some((resource, namespaced)) => {
                    let namespace = scoped_namespace(&object, namespaced, default_namespace);
                    resolved.push(Resolved { object, resource: Some(resource), namespace });
                }
                None if crd_kinds.contains(&(object.gvk.group.clone(), object.gvk.kind.clone())) => {
                    resolved.push(Resolved { object, resource: None, namespace: None });
                }
                None => return Err(unknown_kind(&object)),
            }
        }
        Ok(resolved)
    }

    async fn apply_one(&self, client: &Client, item: &Resolved, manager: &str) -> Result<Value, DeployError> {
        let Some(resource) = &item.resource else { return Err(unknown_kind(&item.object)) };
        let api = dynamic_api(client, resource, item.namespace.as_deref());
        let mut value = item.object.value.clone();
        if let (Some(ns), Some(meta)) = (&item.namespace, value.get_mut("metadata").and_then(Value::as_object_mut)) {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        let params = PatchParams::apply(manager).force();
        let applied = api
            .patch(&item.object.name, &params, &Patch::Apply(&value))
            .await
            .map_err(|e| DeployError::from_api(&item.object.origin, &item.object.display(), e))?;
        serde_json::to_value(applied).map_err(|e| DeployError::ApplyFailed {
            origin: item.object.origin.clone(),
            object: item.object.display(),
            message: e.to_string(),
        })
    }

    /// The live generation of every workload in the set (`None` when it does not exist yet).
    async fn workload_generations(&self, client: &Client, resolved: &[Resolved]) -> HashMap<String, Option<i64>> {
        let reads: Vec<_> = resolved
            .iter()
            .filter(|item| health::is_workload(&item.object.gvk.group, &item.object.gvk.kind))
            .filter_map(|item| {
                let api = dynamic_api(client, item.resource.as_ref()?, item.namespace.as_deref());
                Some(async move {
                    let live = api.get_opt(&item.object.name).await.ok().flatten();
                    (item.object.display(), live.and_then(|o| o.metadata.generation))
                })
            })
            .collect();
        futures::stream::iter(reads).buffer_unordered(PARALLEL_REQUESTS).collect().await
    }

    /// The resource of a kind a CRD of the set defines. Discovery can lag a moment behind the
    /// CRD's Established condition, so a kind not found yet is looked up again for a while.
    async fn resolve_new_kind(&self, gvk: &GroupVersionKind) -> Result<Option<(ApiResource, bool)>, DeployError> {
        let deadline = tokio::time::Instant::now() + DISCOVERY_LAG;
        loop {
            match self.resolve_kind(gvk).await.map_err(DeployError::Transport)? {
                Some(found) => return Ok(Some(found)),
                None if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                None => return Ok(None),
            }
        }
    }

    /// Waits (on a watch, not by polling) until the CRD `name` is Established.
    async fn wait_established(&self, name: &str) -> Result<(), DeployError> {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        use kube::runtime::wait::{await_condition, conditions::is_crd_established};
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        match tokio::time::timeout(CRD_ESTABLISHED_TIMEOUT, await_condition(api, name, is_crd_established())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(DeployError::CrdNotEstablished { name: name.to_owned() }),
        }
    }

    async fn prune_one(
        &self,
        client: &Client,
        owner: &Owner,
        entry: &InventoryEntry,
    ) -> Result<Option<String>, DeployError> {
        let label = format!("{}/{}", entry.kind, entry.name);
        let (group, version) = entry.api_version.split_once('/').unwrap_or(("", entry.api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &entry.kind);
        let Some((resource, _)) = self.resolve_kind(&gvk).await.map_err(DeployError::Transport)? else {
            return Ok(None);
        };
        let api = dynamic_api(client, &resource, entry.namespace.as_deref());
        let live = api
            .get_opt(&entry.name)
            .await
            .map_err(|e| DeployError::PruneFailed { object: label.clone(), message: e.to_string() })?;
        let Some(live) = live else { return Ok(None) };
        let live_value = serde_json::to_value(&live).unwrap_or_default();
        if !owner.owns(&live_value) {
            tracing::info!(object = %label, "not pruning an object this application did not create");
            return Ok(None);
        }
        api.delete(&entry.name, &DeleteParams::background())
            .await
            .map_err(|e| DeployError::PruneFailed { object: label.clone(), message: e.to_string() })?;
        Ok(Some(label))
    }

    /// Deletes the hook objects among `entries` (the owner's, provably) whose
    /// `helm.sh/hook-delete-policy` asks for it now that their Jobs `succeeded` (or failed).
    pub async fn clean_up_hooks(
        &self,
        owner: &Owner,
        service_account: Option<&str>,
        entries: &[InventoryEntry],
        succeeded: bool,
    ) -> Result<Vec<String>, DeployError> {
        let client = self.client_for(&owner.namespace, service_account)?;
        let mut deleted = Vec::new();
        for entry in entries {
            let Some((api, live)) = self.live(&client, entry).await? else { continue };
            let policy = super::hooks::DeletePolicy::of(&live);
            if (succeeded && policy.on_success || !succeeded && policy.on_failure) && owner.owns(&live) {
                api.delete(&entry.name, &DeleteParams::background()).await.map_err(|e| DeployError::PruneFailed {
                    object: format!("{}/{}", entry.kind, entry.name),
                    message: e.to_string(),
                })?;
                deleted.push(format!("{}/{}", entry.kind, entry.name));
            }
        }
        Ok(deleted)
    }

    /// The live object of `entry` and the API it lives in; `None` when it is gone or its kind is not served.
    async fn live(
        &self,
        client: &Client,
        entry: &InventoryEntry,
    ) -> Result<Option<(Api<DynamicObject>, Value)>, DeployError> {
        let (group, version) = entry.api_version.split_once('/').unwrap_or(("", entry.api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &entry.kind);
        let Some((resource, _)) = self.resolve_kind(&gvk).await.map_err(DeployError::Transport)? else {
            return Ok(None);
        };
        let api = dynamic_api(client, &resource, entry.namespace.as_deref());
        let live = api.get_opt(&entry.name).await.map_err(DeployError::Transport)?;
        Ok(live.map(|live| (api, serde_json::to_value(&live).unwrap_or_default())))
    }

    /// Deletes every object of an inventory that is provably the owner's (finalizer with prune).
    pub async fn delete_all(
        &self,
        owner: &Owner,
        service_account: Option<&str>,
        inventory: &[InventoryEntry],
    ) -> Result<Vec<String>, DeployError> {
        let client = self.client_for(&owner.namespace, service_account)?;
        let mut deleted = Vec::new();
        for entry in super::plan::to_prune(inventory, &[]) {
            if let Some(label) = self.prune_one(&client, owner, &entry).await? {
                deleted.push(label);
            }
        }
        Ok(deleted)
    }
}

/// Restarts the selected workloads (a paused Deployment is noted, not restarted) and notes
/// in `outcome` the workloads whose rollout is to be awaited: those whose template changed or
/// that were restarted.
async fn restart_and_select(
    client: &Client,
    restart: &RestartSelection,
    resolved: &[Resolved],
    live: &HashMap<ObjectKey, Value>,
    before: &HashMap<String, Option<i64>>,
    outcome: &mut Outcome,
) -> Result<(), DeployError> {
    let now = jiff::Timestamp::now().to_string();
    for item in resolved {
        let (group, kind, name) = (&item.object.gvk.group, &item.object.gvk.kind, &item.object.name);
        if !health::is_workload(group, kind) {
            continue;
        }
        let Some(resource) = &item.resource else { continue };
        let label = item.object.display();
        let key = ObjectKey::of(item);
        let generation_after = live.get(&key).and_then(|v| v["metadata"]["generation"].as_i64());
        let changed = before.get(&label).copied().flatten() != generation_after;
        let mut restarted = false;
        if restart.includes(kind, name) {
            if is_paused_deployment(live, &key) {
                outcome.paused.push(label.clone());
            } else {
                let api = dynamic_api(client, resource, item.namespace.as_deref());
                let params = PatchParams { field_manager: Some(RESTART_FIELD_MANAGER.into()), ..Default::default() };
                api.patch(name, &params, &Patch::Merge(restart::patch(&now)))
                    .await
                    .map_err(|e| DeployError::RestartFailed { object: label.clone(), message: e.to_string() })?;
                outcome.restarted.push(label.clone());
                restarted = true;
            }
        }
        if changed {
            outcome.changed.push(label.clone());
        }
        if changed || restarted {
            outcome.rolling_out.push(inventory_entry(item));
        }
    }
    Ok(())
}

fn dynamic_api(client: &Client, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

fn scoped_namespace(object: &PlannedObject, namespaced: bool, default_namespace: &str) -> Option<String> {
    namespaced.then(|| object.namespace.clone().unwrap_or_else(|| default_namespace.to_owned()))
}

fn unknown_kind(object: &PlannedObject) -> DeployError {
    DeployError::UnknownKind {
        origin: object.origin.clone(),
        api_version: object.gvk.api_version(),
        kind: object.gvk.kind.clone(),
    }
}

fn inventory_entry(item: &Resolved) -> InventoryEntry {
    InventoryEntry {
        api_version: item.object.gvk.api_version(),
        kind: item.object.gvk.kind.clone(),
        namespace: item.namespace.clone(),
        name: item.object.name.clone(),
    }
}

/// The server-side dry run of one object: the error that refuses it, if any. A 404 for an
/// object whose namespace the same set creates is no refusal (the namespace comes first). An
/// object another application applied is refused too: it is never taken over (the dry run's
/// answer lists every field manager of the live object, so this costs no extra request).
async fn dry_run(
    client: &Client,
    item: &Resolved,
    owner: &Owner,
    manager: &str,
    namespaces_in_set: &BTreeSet<String>,
) -> Option<DeployError> {
    let api = dynamic_api(client, item.resource.as_ref()?, item.namespace.as_deref());
    let params = PatchParams::apply(manager).force().dry_run();
    let error = match api.patch(&item.object.name, &params, &Patch::Apply(&item.object.value)).await {
        Ok(result) => {
            let other = owner.other_owner(&serde_json::to_value(&result).unwrap_or_default())?;
            return Some(DeployError::OwnedByAnother {
                origin: item.object.origin.clone(),
                object: item.object.display(),
                owner: other,
            });
        }
        Err(error) => error,
    };
    let namespace_pending = item.namespace.as_ref().is_some_and(|ns| namespaces_in_set.contains(ns))
        && matches!(&error, kube::Error::Api(e) if e.code == 404);
    (!namespace_pending).then(|| DeployError::from_api(&item.object.origin, &item.object.display(), error))
}

/// Read-only requests (dry runs, reads) one deployment keeps in flight at once.
const PARALLEL_REQUESTS: usize = 8;

/// How long discovery may lag behind a new CRD's Established condition.
const DISCOVERY_LAG: Duration = Duration::from_secs(10);

/// How long a CRD of the set may take to be Established before the deployment fails.
const CRD_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// An object's identity in the cluster. A name alone repeats across namespaces and kinds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ObjectKey {
    group: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl ObjectKey {
    fn of(item: &Resolved) -> Self {
        Self {
            group: item.object.gvk.group.clone(),
            kind: item.object.gvk.kind.clone(),
            namespace: item.namespace.clone(),
            name: item.object.name.clone(),
        }
    }
}

/// Is the applied object at `key` a paused Deployment (which a restart must leave alone)?
fn is_paused_deployment(live: &HashMap<ObjectKey, Value>, key: &ObjectKey) -> bool {
    key.group == "apps"
        && key.kind == "Deployment"
        && live.get(key).is_some_and(|applied| applied["spec"]["paused"].as_bool() == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(kind: &str, namespace: &str, name: &str) -> ObjectKey {
        let group = if kind == "ConfigMap" { "" } else { "apps" };
        ObjectKey { group: group.into(), kind: kind.into(), namespace: Some(namespace.into()), name: name.into() }
    }

    #[test]
    fn only_the_paused_deployment_itself_blocks_its_restart() {
        let mut live = HashMap::new();
        live.insert(key("Deployment", "team-a", "web"), json!({"spec": {"paused": true}}));
        live.insert(key("Deployment", "team-b", "web"), json!({"spec": {"replicas": 2}}));
        live.insert(key("StatefulSet", "team-a", "web"), json!({"spec": {"replicas": 1}}));
        assert!(is_paused_deployment(&live, &key("Deployment", "team-a", "web")));
        // A Deployment of the same name in another namespace, or another kind of the same name
        // in the same namespace, is not paused by it (it used to be: the check matched names).
        assert!(!is_paused_deployment(&live, &key("Deployment", "team-b", "web")));
        assert!(!is_paused_deployment(&live, &key("StatefulSet", "team-a", "web")));
        assert!(!is_paused_deployment(&live, &key("Deployment", "team-a", "api")), "not applied: not paused");
    }
}
