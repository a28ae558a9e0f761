//! tugboat: deploys applications from Git into Kubernetes and redeploys them when a webhook is called.
#![forbid(unsafe_code)]

pub mod api;
pub mod crds;
pub mod duration;
pub mod render;
