//! Real Git smart-HTTP server for tests: `git http-backend` (CGI) behind a tiny std-only HTTP/1.1 front end.
//!
//! Why: tugboat's fetch, auth and caching logic must be exercised against genuine git wire
//! behaviour (protocol v0 and v2, gzip and chunked request bodies, 401 challenges) rather than a
//! mock. Every request is logged so tests can assert how often tugboat actually hit the remote.
//! One thread per connection and `Connection: close` on every response keep the framing trivial.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Bound on a request head or CGI header block, so a hostile peer cannot exhaust memory.
const MAX_HEAD: usize = 64 * 1024;
/// Idle socket timeout: generous for slow CI, finite so a stalled client never pins a worker.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// One HTTP request as seen by the server, logged once its response status is known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoggedRequest {
    /// HTTP method; empty when the request line itself was malformed.
    pub method: String,
    /// Path without the query, e.g. `/team/app.git/info/refs`.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// `git-upload-pack` / `git-receive-pack`, from `?service=` or the last path segment.
    pub service: Option<String>,
    /// Protocol v2 command (`ls-refs`, `fetch`) sniffed from an uncompressed POST body.
    pub command: Option<String>,
    /// Status code sent to the client.
    pub status: u16,
    /// User whose Basic or Bearer credentials were accepted; `None` when auth is off or failed.
    pub user: Option<String>,
    /// The body used `Transfer-Encoding: chunked` (git streams large requests that way).
    pub chunked: bool,
    /// The body was gzip-compressed (git compresses larger upload-pack requests).
    pub gzip: bool,
    /// Body bytes as received (de-chunked, still compressed); a lone `0000` is git's probe.
    pub body_len: u64,
}

impl LoggedRequest {
    /// A successful `method` request for `service` in `repo` (e.g. `team/app.git`).
    fn is(&self, repo: &str, method: &str, service: &str) -> bool {
        let prefix = format!("/{}/", repo.trim_matches('/'));
        (200..300).contains(&self.status)
            && self.method == method
            && self.service.as_deref() == Some(service)
            && self.path.starts_with(&prefix)
    }
}

/// Running server; dropping it stops the accept loop and joins every worker thread.
pub struct GitServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    root: PathBuf,
    credentials: Option<(String, String)>,
    log: Mutex<Vec<LoggedRequest>>,
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// Clones of open connections so `stop` can unblock workers stuck in reads.
    open: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Poisoning only means another worker panicked; the data is still fine for a test server.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cache options under which tugboat may reach test servers on 127.0.0.1 (this one, the ssh
/// server): the Git egress guard refuses loopback unless the operator allows it, as
/// `--git-egress-allow 127.0.0.0/8` does for the operators of the end-to-end tests.
pub fn loopback_cache_options() -> tugboat::source::CacheOptions {
    let loopback = "127.0.0.0/8".parse().expect("CIDR");
    let egress = tugboat::egress::EgressPolicy::for_git(vec![loopback], false);
    tugboat::source::CacheOptions { egress, ..tugboat::source::CacheOptions::default() }
}

impl GitServer {
    /// Serves the bare repositories below `root` on a free 127.0.0.1 port. With `credentials`,
    /// every request must carry `Basic user:password` or `Bearer password`.
    pub fn start(root: &Path, credentials: Option<(String, String)>) -> io::Result<GitServer> {
        Self::start_on("127.0.0.1", root, credentials)
    }

    /// Like [`GitServer::start`], on a free port of `ip`: the real node's bridge address lets
    /// pods (an operator installed by Helm) reach the server.
    pub fn start_on(ip: &str, root: &Path, credentials: Option<(String, String)>) -> io::Result<GitServer> {
        let listener = TcpListener::bind((ip, 0))?;
        let addr = listener.local_addr()?;
        let root = root.canonicalize()?;
        let shared = Arc::new(Shared { root, credentials, ..Shared::default() });
        let s = Arc::clone(&shared);
        let acceptor = Some(thread::spawn(move || accept_loop(&listener, &s)));
        Ok(GitServer { addr, shared, acceptor })
    }

    /// Clone URL without credentials, e.g. `http://127.0.0.1:PORT/team/app.git`.
    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{}", self.addr, repo.trim_start_matches('/'))
    }

    /// Clone URL with the configured credentials embedded (same as `url` when auth is off).
    pub fn url_with_credentials(&self, repo: &str) -> String {
        let Some((user, password)) = &self.shared.credentials else {
            return self.url(repo);
        };
        let userinfo = format!("{}:{}@", url_encode(user), url_encode(password));
        self.url(repo).replacen("http://", &format!("http://{userinfo}"), 1)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Snapshot of every request served so far, in completion order.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Successful upload-pack POSTs that negotiate or transfer objects: one per clone or fetch
    /// that needed new objects. v2 `ls-refs` POSTs and the flush-only probe git sends before a
    /// large request are excluded, so protocol v0 and v2 count alike.
    pub fn fetch_count(&self, repo: &str) -> usize {
        self.count(|r| {
            r.is(repo, "POST", "git-upload-pack") && r.command.as_deref() != Some("ls-refs") && r.body_len > 4
        })
    }

    /// Successful `GET info/refs?service=git-upload-pack`: one per ls-remote, fetch or clone.
    pub fn ls_remote_count(&self, repo: &str) -> usize {
        self.count(|r| r.is(repo, "GET", "git-upload-pack") && r.path.ends_with("/info/refs"))
    }

    /// Successful receive-pack POSTs carrying data (pushes), probes excluded.
    pub fn push_count(&self, repo: &str) -> usize {
        self.count(|r| r.is(repo, "POST", "git-receive-pack") && r.body_len > 4)
    }

    fn count(&self, pred: impl Fn(&LoggedRequest) -> bool) -> usize {
        lock(&self.shared.log).iter().filter(|r| pred(r)).count()
    }

    /// Stops accepting, aborts open connections and joins all threads. Idempotent.
    pub fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, SeqCst);
        // accept() has no timeout; a throwaway connection wakes it up to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = acceptor.join();
        for conn in lock(&self.shared.open).values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl GitServer {
    /// Serves again on the same address after [`GitServer::stop`] (a Git host coming back).
    pub fn resume(&mut self) -> io::Result<()> {
        if self.acceptor.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr)?;
        self.shared.stopping.store(false, SeqCst);
        let s = Arc::clone(&self.shared);
        self.acceptor = Some(thread::spawn(move || accept_loop(&listener, &s)));
        Ok(())
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stopping.load(SeqCst) {
            break;
        }
        let Ok(stream) = conn else {
            thread::sleep(Duration::from_millis(10)); // e.g. EMFILE: back off, don't spin
            continue;
        };
        let id = shared.next_id.fetch_add(1, SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.open).insert(id, clone);
        }
        let s = Arc::clone(shared);
        // Builder::spawn reports thread exhaustion instead of panicking like thread::spawn.
        let spawned = thread::Builder::new().spawn(move || {
            serve(&s, stream);
            lock(&s.open).remove(&id);
        });
        let mut workers = lock(&shared.workers);
        workers.retain(|h| !h.is_finished());
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(_) => drop(lock(&shared.open).remove(&id)),
        }
    }
}

/// Handles one connection (one request), logs it, then closes gracefully.
fn serve(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut entry = LoggedRequest::default();
    if let Ok(read_half) = stream.try_clone() {
        let _ = handle(shared, &mut BufReader::new(read_half), &mut &stream, &mut entry);
    }
    // Log before closing: clients read bodies until EOF, so once git returns the entry is there.
    if entry.status != 0 {
        lock(&shared.log).push(entry);
    }
    let _ = stream.shutdown(Shutdown::Write);
    // Closing with unread input makes the kernel send RST, which can destroy the response just
    // written (e.g. a 401 to a POST whose body was skipped); read until the client hangs up.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline && matches!((&stream).read(&mut buf), Ok(n) if n > 0) {}
}

/// A parsed request head; header names are lower-cased.
struct Request {
    method: String,
    target: String,
    headers: HashMap<String, String>,
}

/// Parses and authenticates one request, then hands it to the CGI; fills `e` along the way
/// (`status` stays 0 when the peer closed without sending a request).
fn handle(
    shared: &Shared,
    reader: &mut BufReader<TcpStream>,
    out: &mut impl Write,
    e: &mut LoggedRequest,
) -> io::Result<()> {
    let req = match read_head(reader) {
        Ok(Some(req)) => req,
        Ok(None) => return Ok(()),
        Err(err) if err.kind() == io::ErrorKind::InvalidData => {
            return reject(out, e, 400, "", &format!("bad request: {err}\n"));
        }
        Err(err) => return Err(err),
    };
    let header = |name: &str| req.headers.get(name).map(String::as_str);
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    (e.method, e.path, e.query) = (req.method.clone(), path.into(), query.into());
    // Outer `None`: unusable framing; inner `None`: chunked body of unknown length.
    let length = match (header("transfer-encoding"), header("content-length")) {
        (Some(te), _) => te.eq_ignore_ascii_case("chunked").then_some(None),
        (None, Some(len)) => len.parse().ok().map(Some),
        (None, None) => Some(Some(0)),
    };
    // CGI wants a decoded PATH_INFO; test repo names are plain, so `%` is refused, not decoded.
    let bad_path = path.contains('%') || path.split('/').any(|segment| segment == "..");
    let (false, Some(length)) = (bad_path, length) else {
        return reject(out, e, 400, "", "bad path or body framing\n");
    };
    let service = query.split('&').find_map(|kv| kv.strip_prefix("service="));
    let service = service.or_else(|| path.rsplit('/').next().filter(|s| s.starts_with("git-")));
    e.service = service.map(str::to_owned);
    e.chunked = length.is_none();
    e.gzip = header("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if let Some((user, password)) = &shared.credentials {
        if !authorized(header("authorization"), user, password) {
            let challenge = "WWW-Authenticate: Basic realm=\"git\"\r\n";
            return reject(out, e, 401, challenge, "credentials required\n");
        }
        e.user = Some(user.clone());
    }
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    run_cgi(shared, &req.headers, length, reader, out, e)
}

/// Runs `git http-backend` for one request: the body is fed to it on one thread while its
/// response is relayed on this one, so neither side can deadlock on a full pipe.
fn run_cgi(
    shared: &Shared,
    headers: &HashMap<String, String>,
    length: Option<u64>,
    reader: &mut BufReader<TcpStream>,
    out: &mut impl Write,
    e: &mut LoggedRequest,
) -> io::Result<()> {
    let mut cmd = Command::new("git");
    // A clean environment keeps the test runner's GIT_DIR, proxies or config out of the backend.
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &e.method)
        .env("PATH_INFO", &e.path)
        .env("QUERY_STRING", &e.query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit()); // backend errors show up in the test output
    // Without CONTENT_LENGTH http-backend reads stdin to EOF: that is how chunked bodies go in.
    if let Some(n) = length {
        cmd.env("CONTENT_LENGTH", n.to_string());
    }
    // REMOTE_USER also enables receive-pack by default; GIT_PROTOCOL selects protocol v2.
    let forwarded = [
        ("CONTENT_TYPE", headers.get("content-type")),
        ("HTTP_CONTENT_ENCODING", headers.get("content-encoding")),
        ("GIT_PROTOCOL", headers.get("git-protocol")),
        ("REMOTE_USER", e.user.as_ref()),
    ];
    cmd.envs(forwarded.into_iter().filter_map(|(k, v)| Some((k, v?))));
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => return reject(out, e, 502, "", &format!("no http-backend: {err}\n")),
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(io::Error::other("missing CGI pipes"));
    };
    let sniff = e.method == "POST" && !e.gzip;
    let result = thread::scope(|scope| {
        let feeder = scope.spawn(move || feed_body(reader, stdin, length));
        let mut stdout = BufReader::new(stdout);
        let result = match read_cgi_head(&mut stdout) {
            Ok((status, head)) => {
                e.status = status;
                out.write_all(head.as_bytes()).and_then(|()| io::copy(&mut stdout, out)).and_then(|_| out.flush())
            }
            Err(err) => reject(out, e, 502, "", &format!("bad CGI output: {err}\n")),
        };
        drop(stdout);
        if let Ok(Ok((head, len))) = feeder.join() {
            e.command = if sniff { v2_command(&head) } else { None };
            e.body_len = len;
        }
        result
    });
    if result.is_err() {
        let _ = child.kill(); // never leave a stray git process behind
    }
    child.wait()?;
    result
}

/// Copies the body (de-chunked) into the CGI's stdin; returns its first bytes and its length.
fn feed_body(r: &mut impl BufRead, stdin: impl Write, length: Option<u64>) -> io::Result<(Vec<u8>, u64)> {
    let mut w = Sniff { inner: stdin, head: Vec::new(), len: 0 };
    if let Some(n) = length {
        if io::copy(&mut r.take(n), &mut w)? != n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    } else {
        loop {
            let mut budget = MAX_HEAD;
            let line = read_line(r, &mut budget)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                while read_line(r, &mut budget)?.is_some_and(|trailer| !trailer.is_empty()) {}
                break;
            }
            let copied = io::copy(&mut r.take(size), &mut w)?;
            if copied != size || read_line(r, &mut budget)?.as_deref() != Some("") {
                return Err(invalid("truncated chunk"));
            }
        }
    }
    w.flush()?;
    Ok((w.head, w.len)) // dropping `w` closes stdin, signalling EOF to http-backend
}

/// Remembers the first bytes written (and the total) so the v2 command can be logged.
struct Sniff<W> {
    inner: W,
    head: Vec<u8>,
    len: u64,
}

impl<W: Write> Write for Sniff<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let keep = 64usize.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..keep]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A v2 request starts with the pkt-line `XXXXcommand=<name>` (optionally newline-terminated).
fn v2_command(head: &[u8]) -> Option<String> {
    let len = usize::from_str_radix(std::str::from_utf8(head.get(..4)?).ok()?, 16).ok()?;
    let line = head.get(4..len)?.strip_prefix(b"command=")?;
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    String::from_utf8(line.to_vec()).ok()
}

/// Reads the request line and headers; `InvalidData` means "answer 400".
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut budget = MAX_HEAD;
    let Some(line) = read_line(r, &mut budget)? else {
        return Ok(None);
    };
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(invalid("malformed request line"));
    };
    let method_ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !method_ok || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(invalid("malformed request line"));
    }
    let (method, target, mut headers) = (method.to_owned(), target.to_owned(), HashMap::new());
    loop {
        let line = read_line(r, &mut budget)?.ok_or_else(|| invalid("truncated headers"))?;
        if line.is_empty() {
            return Ok(Some(Request { method, target, headers }));
        }
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                headers.insert(k.to_ascii_lowercase(), v.trim().to_owned());
            }
            _ => return Err(invalid("malformed header")),
        }
    }
}

/// Turns the CGI header block into an HTTP/1.1 response head; `Status:` sets the status line.
fn read_cgi_head(r: &mut impl BufRead) -> io::Result<(u16, String)> {
    let (mut budget, mut status, mut headers) = (MAX_HEAD, "200 OK".to_owned(), String::new());
    loop {
        let line = read_line(r, &mut budget)?.ok_or_else(|| invalid("no CGI headers"))?;
        if line.is_empty() {
            let code = status.split(' ').next().and_then(|c| c.parse().ok());
            let code = code.filter(|c| (100..600).contains(c)).ok_or_else(|| invalid("status"))?;
            let head = format!("HTTP/1.1 {status}\r\n{headers}Connection: close\r\n\r\n");
            return Ok((code, head));
        }
        let (k, v) = line.split_once(':').ok_or_else(|| invalid("malformed CGI header"))?;
        if k.eq_ignore_ascii_case("status") {
            status = v.trim().to_owned();
        } else if !["connection", "transfer-encoding"].iter().any(|h| k.eq_ignore_ascii_case(h)) {
            headers.push_str(&format!("{k}: {}\r\n", v.trim()));
        }
    }
}

/// Reads one `\n`-terminated line (CR stripped) within `budget`; `None` on clean EOF.
fn read_line(r: &mut impl BufRead, budget: &mut usize) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.take(*budget as u64).read_until(b'\n', &mut buf)?;
    *budget -= n;
    if n == 0 && *budget > 0 {
        return Ok(None);
    }
    if buf.pop() != Some(b'\n') {
        return Err(invalid("line too long or truncated"));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let line = String::from_utf8(buf).map_err(|_| invalid("non-UTF-8 line"))?;
    Ok(Some(line))
}

/// Answers with an error of our own (not the CGI's) and records its status for the log;
/// `extra` is zero or more `Name: value\r\n` header lines.
fn reject(out: &mut impl Write, e: &mut LoggedRequest, code: u16, extra: &str, body: &str) -> io::Result<()> {
    e.status = code;
    let reason = [(400, "Bad Request"), (401, "Unauthorized"), (502, "Bad Gateway")];
    let reason = reason.iter().find(|(c, _)| *c == code).map_or("Error", |(_, r)| r);
    let (len, close) = (body.len(), "Connection: close\r\n\r\n");
    write!(out, "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\n")?;
    write!(out, "Content-Length: {len}\r\n{extra}{close}{body}")?;
    out.flush()
}

/// Accepts `Basic base64(user:password)` or `Bearer password` (tugboat's token auth).
fn authorized(header: Option<&str>, user: &str, password: &str) -> bool {
    let Some((scheme, value)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => value.trim() == base64(format!("{user}:{password}").as_bytes()),
        "bearer" => value.trim() == password,
        _ => false,
    }
}

/// Standard padded base64; comparing encodings avoids needing a decoder.
fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let bits = (0..3).fold(0u32, |acc, i| acc << 8 | u32::from(*chunk.get(i).unwrap_or(&0)));
        for i in 0..4 {
            let sextet = (bits >> (18 - 6 * i)) & 63;
            out.push(if i <= chunk.len() { TABLE[sextet as usize] as char } else { '=' });
        }
    }
    out
}

/// Percent-encodes URL userinfo so any test credentials survive embedding in a URL.
fn url_encode(s: &str) -> String {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let encoded = s.bytes().map(|b| if keep(b) { (b as char).to_string() } else { format!("%{b:02X}") });
    encoded.collect()
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}
