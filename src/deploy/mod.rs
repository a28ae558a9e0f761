//! Deploying a planned set: server-side dry run of everything, then server-side apply, restarts, prune and health.

mod apply;
mod error;
pub mod health;
pub mod hooks;
pub mod plan;
mod restart;

pub use apply::{DeployRequest, Deployer, Outcome};
pub use error::DeployError;
pub use restart::{RESTARTED_AT_ANNOTATION, RestartSelection};

pub use crate::FIELD_MANAGER;
/// Field manager of rolling restarts: distinct from [`FIELD_MANAGER`], so a later apply keeps
/// the restart annotation instead of removing a field it no longer sends.
pub const RESTART_FIELD_MANAGER: &str = "tugboat-restart";
