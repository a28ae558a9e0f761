//! Writing an application's status (through [`crate::status_patch`]), and remembering what
//! was written so a reconcile never acts on a copy older than its own last write.
//!
//! A deployment's phase lives in status, and reconciles are woken by workloads and gate hooks
//! as well as by the application's own watch; the watch's copy may not show the last write
//! yet. Acting on that copy would carry out a phase twice (restart a workload twice, apply
//! again a deployment already rolling out). tugboat is the only writer of this status, so a
//! copy whose status differs from the last one written is stale: it is read afresh.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use kube::{Api, ResourceExt};

use super::Error;
use crate::FIELD_MANAGER;
use crate::api::{GitOpsApplication, GitOpsApplicationStatus};
use crate::status_patch::{self, Precondition, Written};

/// A digest of the last status this process wrote, per application (`namespace/name`).
#[derive(Default)]
pub struct LastWritten(Mutex<HashMap<String, u64>>);

impl LastWritten {
    /// Does `app` show the last status written for it (or none was written by this process)?
    pub fn is_current(&self, app: &GitOpsApplication) -> bool {
        let written = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key(app)).copied();
        written.is_none_or(|digest| Some(digest) == app.status.as_ref().map(digest_of))
    }

    fn note(&self, app: &GitOpsApplication, status: &GitOpsApplicationStatus) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(key(app), digest_of(status));
    }

    /// An application that is gone needs no memory.
    pub fn forget(&self, app: &GitOpsApplication) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&key(app));
    }
}

fn key(app: &GitOpsApplication) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

fn digest_of(status: &GitOpsApplicationStatus) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(status).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// Replaces the status.
pub async fn write(
    api: &Api<GitOpsApplication>,
    app: &GitOpsApplication,
    status: &GitOpsApplicationStatus,
    written: &LastWritten,
) -> Result<(), Error> {
    status_patch::apply(api, &app.name_any(), status, FIELD_MANAGER, Precondition::None).await?;
    written.note(app, status);
    Ok(())
}

/// Like [`write`], but only if the application has not changed since `app` was read.
/// Returns `false` on a conflict. Used to claim a recorded trigger (see `claim`).
pub async fn write_if_unchanged(
    api: &Api<GitOpsApplication>,
    app: &GitOpsApplication,
    status: &GitOpsApplicationStatus,
    written: &LastWritten,
) -> Result<bool, Error> {
    let precondition = Precondition::Unchanged(app.metadata.resource_version.as_deref());
    match status_patch::apply(api, &app.name_any(), status, FIELD_MANAGER, precondition).await? {
        Written::Applied(_) => {
            written.note(app, status);
            Ok(true)
        }
        Written::Conflict => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(status: Option<GitOpsApplicationStatus>) -> GitOpsApplication {
        let mut app: GitOpsApplication = serde_json::from_value(serde_json::json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
            "metadata": {"name": "shop", "namespace": "team"},
            "spec": {"source": {"repoURL": "https://example.com/a.git", "ref": {"branch": "main"}}},
        }))
        .expect("application");
        app.status = status;
        app
    }

    #[test]
    fn a_copy_older_than_the_last_write_is_not_current() {
        let written = LastWritten::default();
        let before =
            GitOpsApplicationStatus { last_applied_revision: Some("main@sha1:a".into()), ..Default::default() };
        let after = GitOpsApplicationStatus { last_applied_revision: Some("main@sha1:b".into()), ..Default::default() };
        assert!(written.is_current(&app(Some(before.clone()))), "nothing written yet: any copy will do");
        written.note(&app(None), &after);
        assert!(!written.is_current(&app(Some(before))), "the watch has not caught up");
        assert!(!written.is_current(&app(None)));
        assert!(written.is_current(&app(Some(after))));
        written.forget(&app(None));
        assert!(written.is_current(&app(None)));
    }
}
