//! The HTTP client of outgoing webhooks: 10 s per attempt, no redirects followed, no proxy,
//! response bodies read up to a limit, and every address checked by the SSRF guard after DNS
//! resolution (in the resolver itself, so the address checked is the address connected to).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::egress::EgressPolicy;

/// Time allowed for one attempt, connection to last byte (DESIGN §5).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most of a response body that is read; the rest is dropped unread.
pub const RESPONSE_LIMIT: usize = 64 * 1024;

/// One request, rendered, formatted and signed.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub retry_after: Option<String>,
    /// At most [`RESPONSE_LIMIT`] bytes.
    pub body: Vec<u8>,
    pub duration: Duration,
}

/// Why no response came back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Refused by the SSRF guard; retrying cannot help.
    #[error("{0}")]
    Blocked(String),
    /// The request could not be built (bad URL or header); retrying cannot help.
    #[error("{0}")]
    Invalid(String),
    /// Connection refused, timeout, reset: worth retrying.
    #[error("{message}")]
    Transport { message: String, duration: Duration },
}

/// The sender shared by all deliveries.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<EgressPolicy>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("policy", &self.policy).finish_non_exhaustive()
    }
}

fn blocked_message(host: &str, ip: IpAddr, why: crate::egress::Blocked) -> String {
    format!(
        "refused to call {host}: its address {ip} is {} (SSRF guard; the operator's --egress-allow can permit it)",
        why.describe()
    )
}

/// Resolves host names and keeps only the addresses the policy admits.
struct GuardedResolver(Arc<EgressPolicy>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refused.get_or_insert(blocked_message(&host, addr.ip(), why));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let message = refused.unwrap_or_else(|| format!("{host} resolved to no address"));
                return Err(message.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl Sender {
    /// Builds the client.
    ///
    /// # Errors
    /// When the TLS backend cannot be set up.
    pub fn new(policy: EgressPolicy) -> Result<Self, String> {
        // The process uses ring (see Cargo.toml); installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
            .user_agent(concat!("tugboat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client, policy })
    }

    /// Checks the URL's host before sending: IP literals skip the resolver, and a name is
    /// resolved here too so a refusal gets a clear message (the resolver still enforces it).
    async fn precheck(&self, url: &reqwest::Url) -> Result<(), SendError> {
        let host = url.host_str().ok_or_else(|| SendError::Invalid(format!("URL {url} has no host")))?;
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match tokio::net::lookup_host((host, 0)).await {
                Ok(found) => found.map(|a| a.ip()).collect(),
                Err(error) => {
                    return Err(SendError::Transport {
                        message: format!("cannot resolve {host}: {error}"),
                        duration: Duration::ZERO,
                    });
                }
            },
        };
        if addresses.iter().any(|ip| self.policy.check(*ip).is_ok()) {
            return Ok(());
        }
        match addresses.first() {
            Some(ip) => {
                let why = self.policy.check(*ip).err().unwrap_or(crate::egress::Blocked::Other);
                Err(SendError::Blocked(blocked_message(host, *ip, why)))
            }
            None => Err(SendError::Transport {
                message: format!("{host} resolved to no address"),
                duration: Duration::ZERO,
            }),
        }
    }

    /// Sends one request and reads at most [`RESPONSE_LIMIT`] bytes of the answer.
    pub async fn send(&self, request: &Request) -> Result<Response, SendError> {
        let url =
            reqwest::Url::parse(&request.url).map_err(|e| SendError::Invalid(format!("URL {:?}: {e}", request.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SendError::Invalid(format!("URL {url}: only http and https are called")));
        }
        self.precheck(&url).await?;
        let mut builder = self.client.request(request.method.clone(), url);
        for (name, value) in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::Invalid(format!("spec.headers: {name:?} is not a header name")))?;
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                SendError::Invalid(format!("spec.headers.{name}: the value is not a valid header value"))
            })?;
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let started = Instant::now();
        let transport = |error: reqwest::Error, started: Instant| {
            let message = error_chain(&error);
            if message.contains("SSRF guard") {
                SendError::Blocked(message)
            } else {
                SendError::Transport { message, duration: started.elapsed() }
            }
        };
        let mut response = builder.send().await.map_err(|e| transport(e, started))?;
        let header = |name: reqwest::header::HeaderName| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let location = header(reqwest::header::LOCATION);
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < RESPONSE_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = RESPONSE_LIMIT - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                // The status is what counts; a body cut short is read as far as it came.
                Err(_) => break,
            }
        }
        Ok(Response { status, location, retry_after, body, duration: started.elapsed() })
    }
}

/// An error with its causes, so "error sending request" says why.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
