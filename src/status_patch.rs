//! The one way tugboat writes the status of its kinds: a server-side apply of
//! `{apiVersion, kind, metadata, status}` to the status subresource, under a tugboat field
//! manager, optionally on the condition that the object is unchanged since it was read.
//!
//! Every path of every kind goes through [`apply`]: the application pipeline, the trigger
//! claim, the Webhook controller, the trigger endpoint (`lastDelivery`, under its own field
//! manager so the controller's applies leave it alone) and the outgoing dispatcher.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Field manager of `status.lastDelivery` on Webhooks, written by the trigger endpoint on
/// every replica; distinct from [`crate::FIELD_MANAGER`], so the Webhook controller's status
/// applies (which do not send it) never remove it.
pub const ENDPOINT_FIELD_MANAGER: &str = "tugboat-endpoint";

/// Whether a write may only happen if the object is as it was read.
#[derive(Debug, Clone, Copy)]
pub enum Precondition<'a> {
    /// Last writer wins (tugboat is the only writer of these fields).
    None,
    /// Only if `metadata.resourceVersion` is still this one.
    Unchanged(Option<&'a str>),
}

/// What became of a write.
#[derive(Debug)]
pub enum Written<K> {
    /// Applied; the object as the API server stored it.
    Applied(Box<K>),
    /// Refused by the precondition: someone wrote the object since it was read.
    Conflict,
}

/// Writes `status` of the object `name` (see the module doc).
///
/// # Errors
/// The API server's answer, except a precondition's conflict (that is [`Written::Conflict`]).
pub async fn apply<K>(
    api: &Api<K>,
    name: &str,
    status: &impl Serialize,
    manager: &str,
    precondition: Precondition<'_>,
) -> Result<Written<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let mut metadata = serde_json::json!({"name": name});
    if let Precondition::Unchanged(Some(version)) = precondition {
        metadata["resourceVersion"] = serde_json::Value::String(version.to_owned());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": metadata,
        "status": status,
    });
    match api.patch_status(name, &PatchParams::apply(manager).force(), &Patch::Apply(&patch)).await {
        Ok(object) => Ok(Written::Applied(Box::new(object))),
        Err(kube::Error::Api(e)) if e.code == 409 && matches!(precondition, Precondition::Unchanged(_)) => {
            Ok(Written::Conflict)
        }
        Err(error) => Err(error),
    }
}
