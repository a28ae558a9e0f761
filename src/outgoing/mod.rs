//! Outgoing webhooks: events, templates, body formats, signing, the SSRF guard, retries,
//! waiting for completion, and the dispatcher that delivers them (DESIGN §1.3, §5).

pub mod deliver;
pub mod dispatch;
pub mod egress;
pub mod event;
pub mod format;
pub mod hook;
pub mod retry;
pub mod send;
pub mod sign;
pub mod template;
pub mod wait;
