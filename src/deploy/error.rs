//! Why a deployment failed, with the object and manifest it concerns.

use crate::conditions::Reason;

/// A failed step of a deployment.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{origin}: the API server does not know {api_version} {kind} (is its CRD installed?)")]
    UnknownKind { origin: String, api_version: String, kind: String },
    #[error("{origin}: {object} is invalid: {message}")]
    Invalid { origin: String, object: String, message: String },
    #[error("{origin}: {object} is forbidden: {message}")]
    Forbidden { origin: String, object: String, message: String },
    #[error(
        "{origin}: {object} belongs to the application {owner}; an application never takes over another's objects (rename it, or remove it from the other application first)"
    )]
    OwnedByAnother { origin: String, object: String, owner: String },
    #[error("{origin}: applying {object} failed: {message}")]
    ApplyFailed { origin: String, object: String, message: String },
    #[error("CRD {name} did not become established in time")]
    CrdNotEstablished { name: String },
    #[error("pruning {object} failed: {message}")]
    PruneFailed { object: String, message: String },
    #[error("restarting {object} failed: {message}")]
    RestartFailed { object: String, message: String },
    #[error("cannot build a client impersonating {user}: {message}")]
    Impersonation { user: String, message: String },
    #[error("the API server is unreachable: {0}")]
    Transport(#[source] kube::Error),
}

impl DeployError {
    /// CamelCase reason for the Ready condition.
    pub fn reason(&self) -> Reason {
        match self {
            Self::UnknownKind { .. } | Self::Invalid { .. } => Reason::ValidationFailed,
            Self::Forbidden { .. } => Reason::Forbidden,
            Self::OwnedByAnother { .. } => Reason::OwnedByAnotherApplication,
            Self::ApplyFailed { .. } | Self::CrdNotEstablished { .. } => Reason::ApplyFailed,
            Self::PruneFailed { .. } => Reason::PruneFailed,
            Self::RestartFailed { .. } => Reason::RestartFailed,
            Self::Impersonation { .. } => Reason::ImpersonationFailed,
            Self::Transport(_) => Reason::ApiServerUnreachable,
        }
    }

    /// Worth retrying soon without a change (as opposed to waiting for a new commit or spec).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transport(_) | Self::CrdNotEstablished { .. } | Self::ApplyFailed { .. })
    }

    /// Classifies an API error about one object.
    pub(crate) fn from_api(origin: &str, object: &str, error: kube::Error) -> Self {
        let (origin, object) = (origin.to_owned(), object.to_owned());
        match error {
            kube::Error::Api(response) => {
                let message = response.message.clone();
                match response.code {
                    403 => Self::Forbidden { origin, object, message },
                    400 | 404 | 409 | 422 => Self::Invalid { origin, object, message },
                    // Server-side apply answers 500 when the object does not fit the schema.
                    500 if message.contains("failed to create typed patch object") => {
                        Self::Invalid { origin, object, message }
                    }
                    _ => Self::ApplyFailed { origin, object, message },
                }
            }
            other => Self::Transport(other),
        }
    }
}
