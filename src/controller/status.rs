//! Writing an application's status with server-side apply.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use super::Error;
use crate::api::{GitOpsApplication, GitOpsApplicationStatus};

/// Field manager of status writes.
pub const STATUS_MANAGER: &str = "tugboat";

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
    api.patch_status(&app.name_any(), &PatchParams::apply(STATUS_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}
