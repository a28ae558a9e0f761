//! The trigger endpoint: `POST /api/stacks/webhooks/{uuid}` (and `/hooks/{uuid}`) records a trigger on the target applications.

mod client_address;
mod delivery;
mod handler;
mod rate_limit;
mod record;
mod reply;
mod secrets;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::routing::post;
use kube::Client;
use kube::runtime::reflector::Store;

use crate::api::{GitOpsApplication, Webhook};
pub use client_address::{TrustedProxies, fuzz_client_address};
pub use rate_limit::RateLimiter;
pub use record::TriggerWriter;
pub use secrets::SecretCache;

/// Largest body read (DESIGN §2: 1 MiB); larger ones answer 413 without being read whole.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// What every request handler shares.
pub struct EndpointState {
    pub client: Client,
    pub webhooks: Store<Webhook>,
    /// Derives each Webhook's path: `status.webhookPath` is only where it is shown.
    pub paths: Arc<crate::webhook_path::PathKey>,
    /// Applications, for finding a call's targets without asking the API server.
    pub applications: Store<GitOpsApplication>,
    /// Webhook secrets read recently.
    pub secrets: SecretCache,
    /// Writes triggers, grouping those of concurrent calls.
    pub triggers: Arc<TriggerWriter>,
    /// Budgets per client (per Webhook, and for unknown paths); over one a call answers 429.
    pub rate_limit: RateLimiter,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` name the client the budgets are kept for.
    pub trusted_proxies: TrustedProxies,
    pub body_limit: usize,
    /// The operator's default change windows, to tell callers when a held trigger will run.
    pub default_windows: Vec<crate::api::ChangeWindow>,
    /// When each Webhook's `lastDelivery` was last written (see `delivery`).
    pub last_delivery_write: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// False until the Webhook cache has synced: requests answer 503 meanwhile.
    pub ready: Arc<AtomicBool>,
    /// Outgoing webhooks, told of each recorded trigger (`trigger.received`).
    pub outgoing: Arc<crate::outgoing::dispatch::Outgoing>,
    /// Counts every answer by provider and status code (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The router; unknown paths and methods answer in JSON like known ones.
pub fn router(state: Arc<EndpointState>) -> Router {
    Router::new()
        .route("/api/stacks/webhooks/{id}", post(handler::trigger))
        .route("/hooks/{id}", post(handler::trigger))
        .fallback(reply::not_found)
        .method_not_allowed_fallback(reply::method_not_allowed)
        .with_state(state)
}

/// Serves the endpoint on a bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<EndpointState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "trigger endpoint listening");
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
