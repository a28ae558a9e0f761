//! A plain-HTTP proxy in front of the test API server that can stall Lease calls: it forwards
//! every request through a real client (TLS and credentials of the kubeconfig) and, once
//! [`ApiProxy::stall_leases`] is on, holds requests for `leases` without ever answering —
//! an API server that hangs exactly where the leader election talks to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kube::Client;

struct Shared {
    upstream: Client,
    stall: AtomicBool,
    writes: Mutex<Vec<Instant>>,
}

pub struct ApiProxy {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiProxy {
    /// Serves on a free local port, forwarding through `upstream`.
    pub async fn start(upstream: Client) -> Self {
        let shared = Arc::new(Shared { upstream, stall: AtomicBool::new(false), writes: Mutex::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let router = axum::Router::new().fallback(forward).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { port, shared, task }
    }

    /// A client that talks to the API server through this proxy.
    pub fn client(&self) -> Client {
        let url = format!("http://127.0.0.1:{}", self.port).parse().expect("proxy url");
        Client::try_from(kube::Config::new(url)).expect("client through the proxy")
    }

    /// From now on, Lease requests that arrive are held unanswered (or forwarded again).
    pub fn stall_leases(&self, on: bool) {
        self.shared.stall.store(on, Ordering::SeqCst);
    }

    /// When each Lease write (create or update) that the API server accepted reached the
    /// proxy: no later than the client sent it plus the way to the proxy.
    pub fn accepted_lease_writes(&self) -> Vec<Instant> {
        self.shared.writes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let lease = path.contains("/leases/") || path.ends_with("/leases");
    if lease && shared.stall.load(Ordering::SeqCst) {
        // Held until the client gives up and the connection goes away.
        std::future::pending::<()>().await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return (StatusCode::BAD_GATEWAY, "cannot read the request body").into_response();
    };
    let mut upstream = http::Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = parts.headers.get(&name) {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(upstream) = upstream.body(kube::client::Body::from(bytes.to_vec())) else {
        return (StatusCode::BAD_GATEWAY, "cannot build the upstream request").into_response();
    };
    match shared.upstream.send(upstream).await {
        Ok(answer) => {
            let write = parts.method == Method::POST || parts.method == Method::PUT;
            if lease && write && answer.status().is_success() {
                shared.writes.lock().unwrap_or_else(|e| e.into_inner()).push(arrived);
            }
            let (parts, body) = answer.into_parts();
            Response::from_parts(parts, axum::body::Body::new(body))
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}
