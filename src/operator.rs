//! `tugboat run`: wires the client, the Git cache, the controllers and the probe server, and shuts down cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::watch;

use crate::controller::{self, Context, Settings};
use crate::endpoint::{
    self, DEFAULT_BODY_LIMIT, EndpointState, RateLimiter, SecretCache, TriggerWriter, TrustedProxies,
};
use crate::leader::{self, ElectionConfig, Leadership};
use crate::shared_watch::SharedWatch;
use crate::source::{CacheOptions, GitCache};

/// Everything `tugboat run` needs, already parsed from flags and environment.
#[derive(Debug, Clone)]
pub struct Options {
    pub probe_addr: SocketAddr,
    /// Address of the trigger endpoint.
    pub trigger_addr: SocketAddr,
    /// Trigger calls per second allowed from one client to one Webhook, and to unknown paths (0: no limit).
    pub rate_limit_per_source: u32,
    /// Proxies whose forwarding headers name the client (`--trusted-proxies`); empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Explicit kubeconfig; `None`: kube-rs's discovery (in-cluster, `KUBECONFIG`, `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    pub cache_dir: PathBuf,
    /// Bound for the Git cache in bytes (`--cache-max-bytes`; 0: none).
    pub cache_max_bytes: u64,
    /// Which addresses git may connect to (`--git-egress-allow`, `--git-egress-deny-private`).
    pub git_egress: crate::egress::EgressPolicy,
    /// CIDRs outgoing webhooks may call despite the SSRF guard (`--egress-allow`).
    pub egress_allow: Vec<ipnet::IpNet>,
    pub settings: Settings,
    /// Leader election for the controllers; `None`: this replica always leads (one replica only).
    pub election: Option<ElectionConfig>,
    /// The operator's own namespace: the Webhook path key's Secret lives there.
    pub operator_namespace: String,
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot load a kubeconfig (in-cluster, KUBECONFIG or ~/.kube/config): {0}")]
    Config(#[from] kube::config::InferConfigError),
    #[error("cannot load the kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("cannot create the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    HttpClient(String),
    #[error(transparent)]
    PathKey(#[from] crate::webhook_path::KeyError),
    #[error("cannot create the cache directory {path}: {source}")]
    CacheDir { path: PathBuf, source: std::io::Error },
    #[error(
        "lost the leader lease: exiting so that two replicas never deploy at once (a restart rejoins as a follower)"
    )]
    LeadershipLost,
    /// Timing that could let two replicas lead at once: refused before anything starts.
    #[error("{0}")]
    Election(#[from] leader::InvalidElection),
}

/// Runs until SIGTERM or Ctrl-C, then lets in-flight reconciles finish.
///
/// # Errors
/// Besides start-up failures, [`StartError::LeadershipLost`] when this replica led and lost
/// the Lease: it returns at once, without waiting for in-flight reconciles, because another
/// replica may already be deploying.
pub async fn run(options: Options) -> Result<(), StartError> {
    if let Some(election) = &options.election {
        election.validate()?;
    }
    let config = match &options.kubeconfig {
        Some(path) => load_kubeconfig(path).await?,
        None => kube::Config::infer().await?,
    };
    let client = kube::Client::try_from(config.clone()).map_err(StartError::Client)?;
    std::fs::create_dir_all(&options.cache_dir)
        .map_err(|source| StartError::CacheDir { path: options.cache_dir.clone(), source })?;
    let cache_options = CacheOptions {
        allow_file_sources: options.settings.allow_file_sources,
        egress: options.git_egress.clone(),
        max_bytes: options.cache_max_bytes,
        ..CacheOptions::default()
    };
    let git = GitCache::new(options.cache_dir.clone(), cache_options);
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicBool::new(false));

    let listener = tokio::net::TcpListener::bind(options.probe_addr)
        .await
        .map_err(|source| StartError::Listen { addr: options.probe_addr, source })?;
    tracing::info!(addr = %options.probe_addr, "probe server listening (/healthz, /readyz, /metrics)");
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let probes = probe_router(ready.clone(), metrics.clone());
    let mut probe_stop = stop_rx.clone();
    let probe_server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = probe_stop.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, probes).with_graceful_shutdown(shutdown).await {
            tracing::error!(%error, "probe server failed");
        }
    });

    // Every replica: one shared watch per kind. The trigger endpoint reads the stores, the
    // leader's controllers subscribe to the same events (no kind is watched twice).
    let watches = Watches::start(&client, options.settings.namespace.as_deref(), &stop_rx);
    let (webhooks, applications) = (watches.webhooks.store.clone(), watches.applications.store.clone());
    // Every replica: outgoing webhooks (events are queued from the endpoint too).
    let sender = crate::outgoing::send::Sender::new(crate::egress::EgressPolicy::new(options.egress_allow.clone()))
        .map_err(StartError::HttpClient)?;
    let outgoing =
        crate::outgoing::dispatch::Outgoing::new(client.clone(), sender, watches.hooks.store.clone(), metrics.clone());
    outgoing.wait_ready(std::time::Duration::from_secs(10)).await;

    // Every replica derives the same Webhook paths from one key (see `webhook_path`).
    let paths = Arc::new(crate::webhook_path::PathKey::load_or_create(&client, &options.operator_namespace).await?);

    let endpoint_ready = Arc::new(AtomicBool::new(false));
    let endpoint_state = Arc::new(EndpointState {
        client: client.clone(),
        webhooks: webhooks.clone(),
        paths: paths.clone(),
        applications: applications.clone(),
        secrets: SecretCache::default(),
        triggers: TriggerWriter::new(client.clone()),
        rate_limit: RateLimiter::new(options.rate_limit_per_source),
        trusted_proxies: TrustedProxies::new(options.trusted_proxies.clone()),
        body_limit: DEFAULT_BODY_LIMIT,
        last_delivery_write: Default::default(),
        default_windows: options.settings.default_windows.clone(),
        ready: endpoint_ready.clone(),
        outgoing: outgoing.clone(),
        metrics: metrics.clone(),
    });
    let trigger_listener = tokio::net::TcpListener::bind(options.trigger_addr)
        .await
        .map_err(|source| StartError::Listen { addr: options.trigger_addr, source })?;
    let mut endpoint_stop = stop_rx.clone();
    let endpoint = tokio::spawn(endpoint::serve(trigger_listener, endpoint_state, async move {
        let _ = endpoint_stop.wait_for(|stop| *stop).await;
    }));
    tokio::spawn(async move {
        // Re-asked periodically: a wake-up of the store's readiness future can be missed.
        loop {
            let both = async { webhooks.wait_until_ready().await.and(applications.wait_until_ready().await) };
            match tokio::time::timeout(std::time::Duration::from_millis(200), both).await {
                Ok(Ok(())) => break endpoint_ready.store(true, Ordering::SeqCst),
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
        }
    });

    // The leader only: the controllers that write (applications, Webhook status) and the
    // outgoing-webhook dispatcher (so no delivery is sent by two replicas).
    let (leadership, election) = match options.election.clone() {
        Some(config) => {
            tracing::info!(identity = %config.identity, lease = %config.lease_name, namespace = %config.namespace, "leader election on: the controllers start once this replica holds the lease");
            let (leadership, election) = leader::start(client.clone(), config);
            (leadership, Some(election))
        }
        None => (Leadership::always(), None),
    };
    let context = Arc::new(Context::new(
        client.clone(),
        config,
        git,
        options.settings.clone(),
        outgoing.clone(),
        metrics,
        watches.applications.store.clone(),
    ));
    let controllers =
        tokio::spawn(run_controllers(leadership.clone(), context, outgoing, client, paths, watches, stop_rx.clone()));
    ready.store(true, Ordering::SeqCst);
    tracing::info!("tugboat is running");

    let mut lost = leadership.clone();
    let lost = tokio::select! {
        () = shutdown_signal() => false,
        () = lost.lost() => true,
    };
    if lost {
        return Err(StartError::LeadershipLost);
    }
    tracing::info!("shutting down: finishing in-flight reconciles");
    let _ = stop_tx.send(true);
    let _ = controllers.await;
    if let Some(election) = election {
        election.release().await;
    }
    if let Ok(Err(error)) = endpoint.await {
        tracing::error!(%error, "trigger endpoint failed");
    }
    let _ = probe_server.await;
    Ok(())
}

/// The shared watches of tugboat's three kinds.
struct Watches {
    applications: SharedWatch<crate::api::GitOpsApplication>,
    webhooks: SharedWatch<crate::api::Webhook>,
    hooks: SharedWatch<crate::api::OutgoingWebhook>,
}

impl Watches {
    fn start(client: &kube::Client, namespace: Option<&str>, stop: &watch::Receiver<bool>) -> Self {
        fn api<K>(client: &kube::Client, namespace: Option<&str>) -> kube::Api<K>
        where
            K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        {
            match namespace {
                Some(ns) => kube::Api::namespaced(client.clone(), ns),
                None => kube::Api::all(client.clone()),
            }
        }
        let stopped = || {
            let mut stop = stop.clone();
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            }
        };
        Self {
            applications: SharedWatch::start(api(client, namespace), "GitOpsApplication", stopped()),
            webhooks: SharedWatch::start(api(client, namespace), "Webhook", stopped()),
            hooks: SharedWatch::start(api(client, namespace), "OutgoingWebhook", stopped()),
        }
    }
}

/// Waits for leadership (or shutdown), then runs the controllers and the dispatcher until shutdown.
async fn run_controllers(
    mut leadership: Leadership,
    context: Arc<Context>,
    outgoing: Arc<crate::outgoing::dispatch::Outgoing>,
    client: kube::Client,
    paths: Arc<crate::webhook_path::PathKey>,
    watches: Watches,
    mut stop: watch::Receiver<bool>,
) {
    let leading = tokio::select! {
        leading = leadership.acquired() => leading,
        _ = stop.wait_for(|stop| *stop) => false,
    };
    if !leading {
        return;
    }
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let webhooks = controller::webhooks::run(&watches.webhooks, client, paths, stopped(stop.clone()));
    let dispatcher = outgoing.run(&watches.hooks, stopped(stop.clone()));
    let applications = controller::run(context, &watches.applications, stopped(stop));
    futures::join!(webhooks, applications, dispatcher);
}

async fn load_kubeconfig(path: &std::path::Path) -> Result<kube::Config, StartError> {
    let error = |message: String| StartError::Kubeconfig { path: path.to_owned(), message };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| error(e.to_string()))
}

fn probe_router(ready: Arc<AtomicBool>, metrics: Arc<crate::metrics::Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || async move {
                ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], metrics.encode())
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::SeqCst) {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}
