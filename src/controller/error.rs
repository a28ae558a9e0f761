//! Errors that escape a reconcile (and are retried by the error policy).

/// An unexpected failure of the pipeline's own I/O; expected failures become status conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer error: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error(transparent)]
    Deploy(#[from] crate::deploy::DeployError),
    #[error("the application has no namespace")]
    NoNamespace,
    #[error("the object has no uid yet")]
    NoUid,
    #[error("cannot serialize the status: {0}")]
    Serialize(#[from] serde_json::Error),
}
