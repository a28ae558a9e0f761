//! tugboat: deploys applications from Git into Kubernetes and redeploys them when a webhook is called.
#![forbid(unsafe_code)]

/// The field manager of every server-side apply tugboat makes, of objects and of status alike,
/// so later applies own (and may remove) exactly what tugboat wrote.
pub const FIELD_MANAGER: &str = "tugboat";

pub mod api;
pub mod build;
pub mod byte_size;
pub mod conditions;
pub mod controller;
pub mod crds;
pub mod deploy;
pub mod duration;
pub mod egress;
pub mod endpoint;
pub mod keyed_lock;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod outgoing;
pub mod reference;
pub mod render;
pub mod shared_watch;
pub mod source;
pub mod status_patch;
pub mod trigger;
pub mod webhook_path;
pub mod window;
