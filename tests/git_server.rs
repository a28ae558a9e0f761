//! Tests for the real Git smart-HTTP test server and the repo fixtures.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

mod support;

use support::git_repo::{TempDir, Workdir, git, init_bare, ls_remote};
use support::git_server::GitServer;

const REPO: &str = "team/app.git";
const USER: &str = "tugboat";
const PASS: &str = "s3cret";

fn authed_server() -> (TempDir, GitServer) {
    let root = TempDir::new("tugboat-gitroot").unwrap();
    init_bare(root.path(), REPO).unwrap();
    let server = GitServer::start(root.path(), Some((USER.into(), PASS.into()))).unwrap();
    (root, server)
}

#[test]
fn clone_commit_push_and_fetch_roundtrip() {
    let (_root, server) = authed_server();
    let url = server.url_with_credentials(REPO);

    let writer = Workdir::clone_from(&url).unwrap();
    writer.write("deploy/app.yaml", "replicas: 1\n").unwrap();
    let first = writer.commit("first").unwrap();
    writer.push().unwrap();
    assert_eq!(ls_remote(&url, "refs/heads/main").unwrap().as_deref(), Some(first.as_str()));

    let reader = Workdir::clone_from(&url).unwrap();
    assert_eq!(reader.head().unwrap(), first);
    assert_eq!(std::fs::read_to_string(reader.path().join("deploy/app.yaml")).unwrap(), "replicas: 1\n");

    writer.write("deploy/app.yaml", "replicas: 2\n").unwrap();
    writer.remove("deploy").unwrap();
    writer.write("other.txt", "x").unwrap();
    let second = writer.commit("second").unwrap();
    assert_ne!(first, second);
    writer.push().unwrap();
    writer.tag("v1").unwrap();
    writer.push_tags().unwrap();

    reader.fetch().unwrap();
    assert_eq!(reader.rev_parse("origin/main").unwrap(), second);
    assert_eq!(ls_remote(&url, "refs/heads/main").unwrap().as_deref(), Some(second.as_str()));
    assert_eq!(ls_remote(&url, "refs/tags/v1").unwrap().as_deref(), Some(second.as_str()));

    let log = server.request_log();
    assert!(log.iter().any(|r| r.service.as_deref() == Some("git-receive-pack")
        && r.status == 200
        && r.user.as_deref() == Some(USER)));
    assert_eq!(server.push_count(REPO), 3, "{log:#?}");
}

#[test]
fn auth_rejects_missing_and_wrong_credentials_and_accepts_bearer() {
    let (_root, server) = authed_server();
    let seed = Workdir::clone_from(&server.url_with_credentials(REPO)).unwrap();
    let sha = seed.commit("seed").unwrap();
    seed.push().unwrap();
    server.clear_log();

    let anonymous = git().args(["ls-remote", &server.url(REPO)]).output().unwrap();
    assert!(!anonymous.status.success());
    let log = server.request_log();
    assert!(!log.is_empty() && log.iter().all(|r| r.status == 401 && r.user.is_none()), "{log:#?}");
    assert!(log.iter().any(|r| r.path == "/team/app.git/info/refs" && r.query == "service=git-upload-pack"));

    let wrong = server.url(REPO).replace("http://", &format!("http://{USER}:wrong@"));
    server.clear_log();
    assert!(!git().args(["ls-remote", &wrong]).output().unwrap().status.success());
    let log = server.request_log();
    assert!(log.iter().any(|r| r.status == 401) && log.iter().all(|r| r.status != 200), "{log:#?}");

    let bearer = |token: &str| {
        git()
            .args(["-c", &format!("http.extraHeader=Authorization: Bearer {token}"), "ls-remote", &server.url(REPO)])
            .output()
            .unwrap()
    };
    let ok = bearer(PASS);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&sha));
    assert!(!bearer("nope").status.success());

    let basic = git().args(["ls-remote", &server.url_with_credentials(REPO)]).output().unwrap();
    assert!(basic.status.success());
    assert!(server.request_log().iter().any(|r| r.status == 200 && r.user.as_deref() == Some(USER)));
}

/// Exactly one upload-pack POST per fetch that brings new objects, none for ls-remote or a
/// no-op fetch, for protocol v0 and v2 alike (v2's ls-refs POST is not a fetch).
#[test]
fn request_log_counts_fetches_and_ls_remotes_for_v0_and_v2() {
    let root = TempDir::new("tugboat-gitroot").unwrap();
    let server = GitServer::start(root.path(), None).unwrap();
    for version in ["0", "2"] {
        let repo = format!("team/app-v{version}.git");
        init_bare(root.path(), &repo).unwrap();
        let url = server.url(&repo);
        let config = [("protocol.version", version)];
        let writer = Workdir::clone_with_config(&url, &config).unwrap();
        writer.write("a.txt", "1").unwrap();
        writer.commit("one").unwrap();
        writer.push().unwrap();
        assert_eq!(server.fetch_count(&repo), 0);

        let observer = Workdir::clone_with_config(&url, &config).unwrap();
        assert_eq!(server.fetch_count(&repo), 1, "clone, v{version}");
        let before = server.ls_remote_count(&repo);
        let out = git().args(["-c", &format!("protocol.version={version}"), "ls-remote", &url]).output().unwrap();
        assert!(out.status.success());
        assert_eq!(server.fetch_count(&repo), 1, "ls-remote, v{version}");
        assert_eq!(server.ls_remote_count(&repo), before + 1);

        writer.write("a.txt", "2").unwrap();
        let sha = writer.commit("two").unwrap();
        writer.push().unwrap();
        observer.fetch().unwrap();
        assert_eq!(observer.rev_parse("origin/main").unwrap(), sha);
        assert_eq!(server.fetch_count(&repo), 2, "fetch of new commit, v{version}");
        observer.fetch().unwrap();
        assert_eq!(server.fetch_count(&repo), 2, "no-op fetch, v{version}");

        let commands: Vec<_> =
            server.request_log().into_iter().filter(|r| r.path.contains(&repo)).filter_map(|r| r.command).collect();
        if version == "2" {
            assert!(commands.iter().any(|c| c == "ls-refs") && commands.iter().any(|c| c == "fetch"), "{commands:?}");
        } else {
            assert!(commands.is_empty(), "{commands:?}");
        }
    }
}

/// Large pushes arrive chunked, v2 fetches stream chunked bodies and v0 requests with many
/// wants arrive gzipped; all must work end to end.
#[test]
fn chunked_and_gzip_request_bodies() {
    let (_root, server) = authed_server();
    let url = server.url_with_credentials(REPO);
    let writer = Workdir::clone_with_config(&url, &[("http.postBuffer", "65536")]).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let blob: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    writer.write("big.bin", &blob).unwrap();
    writer.commit("big").unwrap();
    for i in 0..30 {
        writer.annotated_tag(&format!("release-{i}"), "release").unwrap();
    }
    writer.push().unwrap();
    writer.push_tags().unwrap();
    let log = server.request_log();
    assert!(
        log.iter().any(|r| r.chunked && r.status == 200 && r.service.as_deref() == Some("git-receive-pack")),
        "{log:#?}"
    );

    // A small post buffer makes git stream the v2 fetch request chunked; v0 gzips it instead.
    for (version, buffer, chunked, gzip) in [("2", "65536", true, false), ("0", "1048576", false, true)] {
        server.clear_log();
        let config = [("protocol.version", version), ("http.postBuffer", buffer)];
        let reader = Workdir::clone_with_config(&url, &config).unwrap();
        assert_eq!(std::fs::read(reader.path().join("big.bin")).unwrap(), blob);
        assert_eq!(reader.git(["tag", "--list"]).unwrap().lines().count(), 30);
        assert_eq!(server.fetch_count(REPO), 1, "{:#?}", server.request_log());
        let log = server.request_log();
        let fetch =
            log.iter().find(|r| r.method == "POST" && r.body_len > 4 && r.command.as_deref() != Some("ls-refs"));
        let fetch = fetch.unwrap_or_else(|| panic!("no fetch POST: {log:#?}"));
        assert_eq!((fetch.chunked, fetch.gzip), (chunked, gzip), "v{version}: {log:#?}");
        assert_eq!(fetch.command.as_deref(), if version == "2" { Some("fetch") } else { None });
    }
}

fn raw_request(server: &GitServer, bytes: &[u8]) -> String {
    let mut conn = TcpStream::connect(server.addr()).unwrap();
    conn.write_all(bytes).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn malformed_requests_get_400_and_server_keeps_serving() {
    let (_root, server) = authed_server();
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"[..],
        b"no newline at all",
        b"GET /team/app.git/info/refs HTTP/1.1\r\nbroken header line\r\n\r\n",
        b"GET /../etc/passwd HTTP/1.1\r\n\r\n",
        b"GET /team/app%2egit/info/refs HTTP/1.1\r\n\r\n",
        b"POST /team/app.git/git-upload-pack HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
    ] {
        let response = raw_request(&server, garbage);
        assert!(response.starts_with("HTTP/1.1 400 "), "{garbage:?} -> {response:?}");
    }
    assert_eq!(server.request_log().iter().filter(|r| r.status == 400).count(), 6);

    let response = raw_request(&server, b"GET /team/app.git/info/refs?service=git-upload-pack HTTP/1.1\r\n\r\n");
    assert!(
        response.starts_with("HTTP/1.1 401 ") && response.contains("WWW-Authenticate: Basic realm=\"git\""),
        "{response}"
    );
    let out = git().args(["ls-remote", &server.url_with_credentials(REPO)]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn stop_is_idempotent_and_refuses_new_connections() {
    let (_root, mut server) = authed_server();
    let addr = server.addr();
    server.stop();
    server.stop();
    assert!(TcpStream::connect(addr).is_err());
}
