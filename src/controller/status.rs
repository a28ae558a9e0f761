//! Writing an application's status with server-side apply.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use super::Error;
use crate::FIELD_MANAGER;
use crate::api::{GitOpsApplication, GitOpsApplicationStatus};

/// Replaces the status (server-side apply of `{apiVersion, kind, status}`).
pub async fn write(
    api: &Api<GitOpsApplication>,
    app: &GitOpsApplication,
    status: &GitOpsApplicationStatus,
) -> Result<(), Error> {
    let patch = serde_json::json!({
        "apiVersion": GitOpsApplication::api_version(&()),
        "kind": GitOpsApplication::kind(&()),
        "status": status,
    });
    api.patch_status(&app.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Like [`write`], but only if the application has not changed since `app` was read
/// (`resourceVersion` as an apply precondition). Returns `false` on a conflict.
///
/// Used to claim a recorded trigger (see `claim`).
pub async fn write_if_unchanged(
    api: &Api<GitOpsApplication>,
    app: &GitOpsApplication,
    status: &GitOpsApplicationStatus,
) -> Result<bool, Error> {
    let patch = serde_json::json!({
        "apiVersion": GitOpsApplication::api_version(&()),
        "kind": GitOpsApplication::kind(&()),
        "metadata": {"resourceVersion": app.resource_version()},
        "status": status,
    });
    match api.patch_status(&app.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(error) => Err(error.into()),
    }
}
