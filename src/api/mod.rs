//! The three resource kinds of `tugboat.dev/v1alpha1`: their Rust types are the source of truth for the CRDs.

mod application;
mod common;
mod outgoing;
mod webhook;

pub use application::*;
pub use common::*;
pub use outgoing::*;
pub use webhook::*;

/// API group of every tugboat kind.
pub const GROUP: &str = "tugboat.dev";
/// API version of every tugboat kind.
pub const VERSION: &str = "v1alpha1";
