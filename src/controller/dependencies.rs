//! `spec.dependsOn`: an application deploys only once each application it depends on is
//! Ready and Healthy at its current revision (Flux's `dependsOn`). The judgement is pure and
//! reads the shared application watch's store, so holding a deployment back costs no request;
//! a dependency's change wakes its dependents ([`dependents`]), so a held deployment runs as
//! soon as the dependency is ready, and the trigger it would claim stays recorded meanwhile.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use kube::{Resource, ResourceExt};

use crate::api::{Dependency, DeploymentResult, GitOpsApplication};
use crate::conditions::{self, HEALTHY, READY, Reason};

/// Most applications a dependency walk looks at (a chain this long is a mistake anyway).
const MAX_WALK: usize = 256;

/// An application's identity: namespace and name.
pub type Key = (String, String);

/// Whether the dependencies let a deployment go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Every dependency is ready (or there are none).
    Open,
    /// A dependency is not ready yet: the deployment waits (reason `DependencyNotReady`).
    Waiting(String),
    /// The dependencies can never be met as the specs stand (a missing application, a cycle):
    /// Stalled until a spec changes or the missing application appears.
    Stalled { reason: Reason, message: String },
}

/// The key a dependency of an application in `namespace` names.
pub fn key_of(dependency: &Dependency, namespace: &str) -> Key {
    (dependency.namespace.clone().unwrap_or_else(|| namespace.to_owned()), dependency.name.clone())
}

fn display((namespace, name): &Key) -> String {
    format!("{namespace}/{name}")
}

/// Judges the dependencies of `app`, looking applications up with `lookup` (the watch's
/// store). Dependencies in other namespaces only with `cross_namespace` (an operator flag: by
/// default a tenant learns nothing of another namespace's applications, not even that they exist).
pub fn judge(
    app: &GitOpsApplication,
    cross_namespace: bool,
    lookup: impl Fn(&Key) -> Option<Arc<GitOpsApplication>>,
) -> Gate {
    let namespace = app.namespace().unwrap_or_default();
    if app.spec.depends_on.is_empty() {
        return Gate::Open;
    }
    let foreign = app.spec.depends_on.iter().position(|d| d.namespace.as_ref().is_some_and(|ns| *ns != namespace));
    if let (Some(index), false) = (foreign, cross_namespace) {
        let message = format!(
            "spec.dependsOn[{index}].namespace: dependencies on applications of other namespaces are off (operator flag --allow-cross-namespace-dependencies)"
        );
        return Gate::Stalled { reason: Reason::InvalidSpec, message };
    }
    let own: Key = (namespace.clone(), app.name_any());
    if let Some(cycle) = cycle_through(&own, &app.spec.depends_on, &lookup) {
        let path: Vec<String> = cycle.iter().map(display).collect();
        return Gate::Stalled {
            reason: Reason::DependencyCycle,
            message: format!("dependency cycle: {}", path.join(" → ")),
        };
    }
    let mut waiting = Vec::new();
    for (index, dependency) in app.spec.depends_on.iter().enumerate() {
        let key = key_of(dependency, &namespace);
        let Some(found) = lookup(&key) else {
            let message = format!("spec.dependsOn[{index}]: GitOpsApplication {} does not exist", display(&key));
            return Gate::Stalled { reason: Reason::DependencyNotFound, message };
        };
        if let Err(why) = readiness(&found) {
            waiting.push(format!("{} {why}", display(&key)));
        }
    }
    if waiting.is_empty() { Gate::Open } else { Gate::Waiting(format!("Waiting for {}", waiting.join("; "))) }
}

/// Is `app` ready to be depended on: Ready and not unhealthy for its current spec, no
/// deployment under way and no call waiting to be deployed? The error says why not.
pub fn readiness(app: &GitOpsApplication) -> Result<(), String> {
    if app.meta().deletion_timestamp.is_some() {
        return Err("is being deleted".into());
    }
    let generation = app.metadata.generation;
    let status = app.status.clone().unwrap_or_default();
    if status.observed_generation != generation {
        return Err("has not reconciled its current spec yet".into());
    }
    if status.deployments.last().is_some_and(|d| d.result == DeploymentResult::Running) {
        return Err("is deploying".into());
    }
    if crate::trigger::record::pending(app).is_some() {
        return Err("has a webhook call not yet deployed".into());
    }
    let ready = conditions::get(&status.conditions, READY);
    match ready {
        Some(c) if c.status == "True" && c.observed_generation == generation => {}
        Some(c) if c.status != "True" => return Err(format!("is not Ready ({}: {})", c.reason, c.message)),
        _ => return Err("is not Ready yet".into()),
    }
    match conditions::get(&status.conditions, HEALTHY) {
        Some(c) if c.status == "False" => Err(format!("is not Healthy ({}: {})", c.reason, c.message)),
        _ => Ok(()),
    }
}

/// A path from `own` through its dependencies back to itself, if there is one (depth-first
/// over what the store knows; applications it does not know end a path).
fn cycle_through(
    own: &Key,
    depends_on: &[Dependency],
    lookup: &impl Fn(&Key) -> Option<Arc<GitOpsApplication>>,
) -> Option<Vec<Key>> {
    let mut visited: HashSet<Key> = HashSet::new();
    let mut path = vec![own.clone()];
    let first: BTreeSet<Key> = depends_on.iter().map(|d| key_of(d, &own.0)).collect();
    walk(own, first, lookup, &mut visited, &mut path)
}

fn walk(
    own: &Key,
    next: BTreeSet<Key>,
    lookup: &impl Fn(&Key) -> Option<Arc<GitOpsApplication>>,
    visited: &mut HashSet<Key>,
    path: &mut Vec<Key>,
) -> Option<Vec<Key>> {
    for key in next {
        if &key == own {
            let mut cycle = path.clone();
            cycle.push(key);
            return Some(cycle);
        }
        if visited.len() >= MAX_WALK || !visited.insert(key.clone()) {
            continue;
        }
        let Some(app) = lookup(&key) else { continue };
        let further: BTreeSet<Key> = app.spec.depends_on.iter().map(|d| key_of(d, &key.0)).collect();
        path.push(key);
        if let Some(cycle) = walk(own, further, lookup, visited, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}

/// The applications of `all` that depend on `changed` (woken when it changes).
pub fn dependents<'a>(changed: &GitOpsApplication, all: impl IntoIterator<Item = &'a GitOpsApplication>) -> Vec<Key> {
    let target: Key = (changed.namespace().unwrap_or_default(), changed.name_any());
    all.into_iter()
        .filter_map(|app| {
            let namespace = app.namespace()?;
            app.spec.depends_on.iter().any(|d| key_of(d, &namespace) == target).then(|| (namespace, app.name_any()))
        })
        .collect()
}

/// What of an application its dependents' judgement reads: a change of anything else (most
/// status writes of a rollout, say) need not wake them.
pub fn readiness_key(app: &GitOpsApplication) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    readiness(app).hash(&mut hasher);
    app.spec.depends_on.hash(&mut hasher);
    app.meta().deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use serde_json::json;

    /// An application `ns/name` depending on `deps` (`name` or `ns/name`), Ready when `ready`.
    fn app(key: &str, deps: &[&str], ready: bool) -> GitOpsApplication {
        let (namespace, name) = key.split_once('/').unwrap_or(("team", key));
        let depends_on: Vec<_> = deps
            .iter()
            .map(|d| match d.split_once('/') {
                Some((ns, n)) => json!({"name": n, "namespace": ns}),
                None => json!({"name": d}),
            })
            .collect();
        let status = if ready { "True" } else { "False" };
        serde_json::from_value(json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
            "metadata": {"name": name, "namespace": namespace, "generation": 3},
            "spec": {"source": {"repoURL": "https://git.example.com/a.git", "ref": {"branch": "main"}}, "dependsOn": depends_on},
            "status": {"observedGeneration": 3, "conditions": [{
                "type": "Ready", "status": status, "reason": if ready { "Succeeded" } else { "HealthCheckFailed" },
                "message": if ready { "ok" } else { "Deployment/web: progress deadline exceeded" },
                "observedGeneration": 3, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("application")
    }

    fn store(apps: &[GitOpsApplication]) -> HashMap<Key, Arc<GitOpsApplication>> {
        apps.iter().map(|a| ((a.namespace().unwrap_or_default(), a.name_any()), Arc::new(a.clone()))).collect()
    }

    fn judged(own: &GitOpsApplication, others: &[GitOpsApplication]) -> Gate {
        let store = store(others);
        judge(own, true, |key| store.get(key).cloned())
    }

    #[test]
    fn dependencies_in_other_namespaces_need_the_operator_flag() {
        let web = app("team/web", &["db", "data/db"], true);
        let store = store(&[app("team/db", &[], true), app("data/db", &[], true)]);
        let gate = judge(&web, false, |key| store.get(key).cloned());
        assert!(
            matches!(&gate, Gate::Stalled { reason: Reason::InvalidSpec, message } if message.starts_with("spec.dependsOn[1].namespace:")),
            "{gate:?}"
        );
        assert_eq!(judge(&web, true, |key| store.get(key).cloned()), Gate::Open);
        // Naming its own namespace is no cross-namespace dependency.
        assert_eq!(judge(&app("team/api", &["team/db"], true), false, |key| store.get(key).cloned()), Gate::Open);
    }

    #[test]
    fn ready_dependencies_open_the_gate_and_unready_ones_say_why() {
        let db = app("db", &[], true);
        assert_eq!(judged(&app("web", &["db"], true), std::slice::from_ref(&db)), Gate::Open);
        assert_eq!(judged(&app("alone", &[], true), &[]), Gate::Open);
        let broken = app("db", &[], false);
        assert_eq!(
            judged(&app("web", &["db"], true), &[broken]),
            Gate::Waiting(
                "Waiting for team/db is not Ready (HealthCheckFailed: Deployment/web: progress deadline exceeded)"
                    .into()
            )
        );
    }

    #[test]
    fn a_dependency_is_not_ready_while_it_works_on_something_newer() {
        let mut stale = app("db", &[], true);
        stale.metadata.generation = Some(4);
        assert_eq!(readiness(&stale), Err("has not reconciled its current spec yet".into()));
        let mut deploying = app("db", &[], true);
        deploying.status.as_mut().expect("status").deployments = vec![
            serde_json::from_value(
                json!({"id": "a", "revision": "main@sha1:a", "startedAt": "2026-01-01T00:00:00Z", "result": "Running"}),
            )
            .expect("record"),
        ];
        assert_eq!(readiness(&deploying), Err("is deploying".into()));
        let mut called = app("db", &[], true);
        let trigger = json!({"id": "t1", "sequence": 1, "at": "2026-01-01T00:00:00Z", "source": "Webhook/ci (github)"});
        called.metadata.annotations =
            Some([(crate::trigger::record::TRIGGER_ANNOTATION.to_owned(), trigger.to_string())].into_iter().collect());
        assert_eq!(readiness(&called), Err("has a webhook call not yet deployed".into()));
        let mut unhealthy = app("db", &[], true);
        let conditions = &mut unhealthy.status.as_mut().expect("status").conditions;
        conditions.push(
            serde_json::from_value(json!({"type": "Healthy", "status": "False", "reason": "HealthCheckFailed",
            "message": "Job/migrate: failed", "lastTransitionTime": "2026-01-01T00:00:00Z"}))
            .expect("condition"),
        );
        assert_eq!(readiness(&unhealthy), Err("is not Healthy (HealthCheckFailed: Job/migrate: failed)".into()));
    }

    #[test]
    fn a_missing_dependency_and_a_cycle_stall_naming_them() {
        assert_eq!(
            judged(&app("web", &["db", "cache"], true), &[app("db", &[], true)]),
            Gate::Stalled {
                reason: Reason::DependencyNotFound,
                message: "spec.dependsOn[1]: GitOpsApplication team/cache does not exist".into()
            }
        );
        let (a, b, c) = (app("a", &["b"], true), app("b", &["c"], true), app("c", &["other/x", "a"], true));
        let x = app("other/x", &[], true);
        assert_eq!(
            judged(&a, &[b.clone(), c.clone(), x.clone()]),
            Gate::Stalled {
                reason: Reason::DependencyCycle,
                message: "dependency cycle: team/a → team/b → team/c → team/a".into()
            }
        );
        let own = app("self", &["self"], true);
        assert!(matches!(judged(&own, &[]), Gate::Stalled { reason: Reason::DependencyCycle, .. }));
        // A cycle elsewhere (b ⇄ c) that does not pass through `d` is theirs to report, not d's.
        let (b2, c2) = (app("b", &["c"], true), app("c", &["b"], true));
        assert_eq!(judged(&app("d", &["b"], true), &[b2, c2]), Gate::Open);
    }

    #[test]
    fn dependents_are_found_across_namespaces_by_the_name_they_give() {
        let db = app("data/db", &[], true);
        let all = [app("team/web", &["data/db"], true), app("data/api", &["db"], true), app("team/db", &[], true)];
        let mut found = dependents(&db, &all);
        found.sort();
        assert_eq!(found, vec![("data".into(), "api".into()), ("team".into(), "web".into())]);
    }
}
