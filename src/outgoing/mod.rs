//! Outgoing webhooks: events, templates, body formats, signing, retries, waiting for
//! completion, and the dispatcher that delivers them (DESIGN §1.3, §5). The SSRF guard they
//! call through is `crate::egress`, shared with Git sources.

pub mod deliver;
pub mod dispatch;
pub mod event;
pub mod format;
pub mod hook;
pub mod retry;
pub mod send;
pub mod sign;
pub mod template;
pub mod wait;
