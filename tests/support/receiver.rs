//! A real HTTP receiver for outgoing webhooks: records every request and answers from a
//! script per `METHOD /path` (replies used in order, the last one repeating).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: String::new() }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self { status, headers: vec![("content-type".into(), "application/json".into())], body: body.to_string() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    scripts: HashMap<String, VecDeque<Reply>>,
}

/// The running receiver; stops when dropped.
pub struct Receiver {
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { port, inner, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers `METHOD path` with `replies` in order; the last one repeats. Unscripted: 200.
    pub fn script(&self, method: &str, path: &str, replies: Vec<Reply>) {
        self.inner.lock().expect("lock").scripts.insert(format!("{method} {path}"), replies.into());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().expect("lock").requests.clone()
    }

    /// Requests whose path is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let path = uri.path().to_owned();
    let target = uri.path_and_query().map_or(path.clone(), |pq| pq.as_str().to_owned());
    let reply = {
        let mut inner = inner.lock().expect("lock");
        inner.requests.push(Recorded {
            method: method.to_string(),
            target,
            path: path.clone(),
            headers,
            body: body.to_vec(),
        });
        match inner.scripts.get_mut(&format!("{method} {path}")) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
        .unwrap_or_else(|| Reply::status(200))
    };
    let mut response = (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK), reply.body).into_response();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) =
            (axum::http::HeaderName::from_bytes(name.as_bytes()), axum::http::HeaderValue::from_str(&value))
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Runs `tests/support/outgoing_check.py` on a recorded request: the `standardwebhooks`
/// package verifies the signature (with `secret`), the `cloudevents` SDK parses the body
/// (with `cloudevent`). Returns what the script printed.
///
/// # Panics
/// When the script or its packages are missing (`.ci/run` installs them) or a check fails.
pub fn independent_check(request: &Recorded, secret: Option<&str>, cloudevent: bool) -> serde_json::Value {
    use base64::Engine as _;
    use std::io::Write as _;
    let input = serde_json::json!({
        "headers": request.headers,
        "body": base64::engine::general_purpose::STANDARD.encode(&request.body),
        "secret": secret,
        "cloudevent": cloudevent,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/outgoing_check.py");
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/testenv/python.sh");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("testenv/python.sh runs (it installs the checkers into a virtualenv)");
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write");
    let output = child.wait_with_output().expect("python3 output");
    assert!(output.status.success(), "independent check failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("checker prints JSON")
}
