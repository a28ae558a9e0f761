//! Hostile input against a running operator: each request of the table goes to the real
//! trigger endpoint, gets the status code of its row, and records nothing. Signed rows carry
//! a valid signature, so the payload itself reaches the parser — among them the payload
//! shapes that crashed Argo CD's webhook handler in 2025 (a string where an array belongs, a
//! missing repository, empty ref/changes arrays). docs/security.md lists the same table.

mod support;

use kube::ResourceExt;
use serde_json::json;
use tugboat::trigger::signature::hmac_sha256_hex;

use support::fixture::{Fixture, demo_manifests, is_ready_at};
use support::http::{Reply, post, request};

const SECRET: &str = "hostile-secret";
/// A pushed commit id (not all zeros, which would mean a deleted ref).
const AFTER: &str = "0123456789abcdef0123456789abcdef01234567";

/// One request and the answer it must get.
struct Case {
    name: &'static str,
    method: &'static str,
    /// `{generic}` / `{github}` / `{bitbucket}` are replaced by the Webhooks' paths.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Acceptable status codes (0: the server closed the connection without an answer).
    want: &'static [u16],
}

fn case(name: &'static str, target: &str, body: &[u8], want: &'static [u16]) -> Case {
    Case { name, method: "POST", target: target.to_owned(), headers: vec![], body: body.to_vec(), want }
}

fn with_header(mut c: Case, name: &str, value: &str) -> Case {
    c.headers.push((name.to_owned(), value.to_owned()));
    c
}

/// A GitHub push-shaped call with a valid signature over `body`.
fn github(name: &'static str, event: &str, body: &[u8], want: &'static [u16]) -> Case {
    let signature = format!("sha256={}", hmac_sha256_hex(SECRET.as_bytes(), body));
    let c = case(name, "{github}", body, want);
    let c = with_header(c, "X-GitHub-Event", event);
    let c = with_header(c, "Content-Type", "application/json");
    with_header(c, "X-Hub-Signature-256", &signature)
}

/// A Bitbucket call with a valid signature over `body`.
fn bitbucket(name: &'static str, event: &str, body: &[u8], want: &'static [u16]) -> Case {
    let signature = format!("sha256={}", hmac_sha256_hex(SECRET.as_bytes(), body));
    let c = case(name, "{bitbucket}", body, want);
    let c = with_header(c, "X-Event-Key", event);
    with_header(c, "X-Hub-Signature", &signature)
}

fn json_bytes(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("json")
}

/// The hostile table. Pure data: the same rows are listed in docs/security.md.
fn cases(repo_url: &str) -> Vec<Case> {
    let repo = json!({"clone_url": repo_url, "html_url": repo_url, "full_name": "team/app"});
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let wide = json!({"ref": "refs/heads/other", "after": AFTER, "repository": repo, "commits": vec![json!({"id": "x"}); 20_000]});
    vec![
        // Paths and methods.
        case("unknown webhook id", "/api/stacks/webhooks/00000000-0000-4000-8000-000000000000", b"", &[404]),
        case("path traversal", "/api/stacks/webhooks/../../../etc/passwd", b"", &[404]),
        case("encoded NUL in the id", "/hooks/%00", b"", &[404]),
        case("10 KB id", &format!("/hooks/{}", "a".repeat(10_000)), b"", &[404]),
        Case { method: "PUT", ..case("PUT instead of POST", "{generic}", b"", &[405]) },
        Case { method: "DELETE", ..case("DELETE", "{generic}", b"", &[405]) },
        // Query strings.
        case("invalid UTF-8 in the query", "{generic}?SERVICE_TAG=%FF%FE", b"", &[400]),
        case("variable name starting with a digit", "{generic}?1TAG=x", b"", &[400]),
        case("undeclared variable", "{generic}?NOT_DECLARED=x", b"", &[400]),
        case("duplicate query parameter", "{generic}?SERVICE_TAG=a&SERVICE_TAG=b", b"", &[400]),
        case("rollout-restart of an unknown kind", "{generic}?rollout-restart=pods/x", b"", &[400]),
        case("rollout-restart of a workload not in the app", "{generic}?rollout-restart=deployment/other", b"", &[400]),
        case("empty rollout-restart", "{generic}?rollout-restart=", b"", &[400]),
        case("image tag with a slash and spaces", "{generic}?tag=..%2F..%2Fx%20y", b"", &[400]),
        case("64 KB query string", &format!("{{generic}}?SERVICE_TAG={}", "x".repeat(65_536)), b"", &[400, 414, 431]),
        // Bodies and content types.
        case("body over 1 MiB", "{generic}", &vec![b'x'; 2 * 1024 * 1024], &[413]),
        with_header(
            case("form post with an invalid field name", "{generic}", b"1BAD=x&%ZZ=y", &[400]),
            "Content-Type",
            "application/x-www-form-urlencoded",
        ),
        with_header(
            case("form post with invalid UTF-8", "{generic}", b"SERVICE_TAG=%FF", &[400]),
            "Content-Type",
            "application/x-www-form-urlencoded",
        ),
        with_header(
            case("oversized header (1 MB)", "{generic}", b"", &[0, 400, 431]),
            "X-Padding",
            &"p".repeat(1024 * 1024),
        ),
        // Signatures.
        with_header(case("GitHub call without a signature", "{github}", b"{}", &[401]), "X-GitHub-Event", "push"),
        with_header(
            with_header(
                case("GitHub call with a wrong signature", "{github}", b"{}", &[401]),
                "X-GitHub-Event",
                "push",
            ),
            "X-Hub-Signature-256",
            "sha256=0000000000000000000000000000000000000000000000000000000000000000",
        ),
        with_header(
            with_header(case("GitHub signature that is not hex", "{github}", b"{}", &[401]), "X-GitHub-Event", "push"),
            "X-Hub-Signature-256",
            "sha256=zz\u{00e9}",
        ),
        // Signed payloads of the wrong shape (Argo CD 2025 crash shapes and more).
        github("invalid UTF-8 body", "push", b"{\"ref\": \"\xff\xfe\"}", &[400]),
        github("not JSON", "push", b"ref=refs/heads/main", &[400]),
        github("JSON array instead of an object", "push", b"[]", &[400]),
        github("missing repository", "push", &json_bytes(json!({"ref": "refs/heads/main"})), &[400]),
        github(
            "repository is a string",
            "push",
            &json_bytes(json!({"ref": "refs/heads/main", "repository": "team/app"})),
            &[400],
        ),
        github("ref is an array", "push", &json_bytes(json!({"ref": ["refs/heads/main"], "repository": repo})), &[400]),
        github("ref is empty", "push", &json_bytes(json!({"ref": "", "repository": repo})), &[400]),
        github(
            "commits is a string (array expected)",
            "push",
            &json_bytes(json!({"ref": "refs/heads/other", "after": AFTER, "repository": repo, "commits": "abc"})),
            &[200],
        ),
        github("deeply nested JSON (100,000 levels)", "push", deep.as_bytes(), &[400, 413]),
        github("20,000 commits, another branch", "push", &json_bytes(wide), &[200]),
        github("unknown event", "issues", &json_bytes(json!({"action": "opened"})), &[200]),
        github("ping", "ping", &json_bytes(json!({"zen": "hi", "hook_id": 1})), &[200]),
        bitbucket(
            "Bitbucket Server: empty changes array",
            "repo:refs_changed",
            &json_bytes(json!({"eventKey": "repo:refs_changed", "repository": {"slug": "app"}, "changes": []})),
            &[400],
        ),
        bitbucket(
            "Bitbucket Server: changes is a string",
            "repo:refs_changed",
            &json_bytes(json!({"eventKey": "repo:refs_changed", "repository": {"slug": "app"}, "changes": "x"})),
            &[400],
        ),
        bitbucket(
            "Bitbucket Cloud: empty push.changes",
            "repo:push",
            &json_bytes(json!({"push": {"changes": []}, "repository": {"links": {"html": {"href": repo_url}}}})),
            &[400],
        ),
        bitbucket(
            "Bitbucket Cloud: push is null",
            "repo:push",
            &json_bytes(json!({"push": null, "repository": {"full_name": "team/app"}})),
            &[400],
        ),
    ]
}

async fn send(port: u16, paths: &[(&str, &str)], c: &Case) -> Reply {
    let mut target = c.target.clone();
    for (key, path) in paths {
        target = target.replace(key, path);
    }
    let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    request(port, c.method, &target, &headers, &c.body).await
}

#[tokio::test]
async fn hostile_requests_get_clear_answers_and_change_nothing() {
    let Some(f) = Fixture::start("hostile", &demo_manifests(), &["--rate-limit-per-source", "0"]).await else {
        return;
    };
    let sha = f.head();
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &sha)).await;
    f.create_secret("hook-secret", &[("token", SECRET)]).await;
    let generic = f.create_webhook("generic", json!({"targets": [{"name": "shop"}]})).await;
    let github_path = f
        .create_webhook(
            "github",
            json!({"provider": "github", "secretRef": {"name": "hook-secret"}, "targets": [{"name": "shop"}]}),
        )
        .await;
    let bitbucket_path = f
        .create_webhook(
            "bitbucket",
            json!({"provider": "bitbucket", "secretRef": {"name": "hook-secret"}, "targets": [{"name": "shop"}]}),
        )
        .await;
    let before = f.apps().get("shop").await.expect("app");
    let paths =
        [("{generic}", generic.as_str()), ("{github}", github_path.as_str()), ("{bitbucket}", bitbucket_path.as_str())];
    let port = f.operator.trigger_port;

    let mut failures = Vec::new();
    for c in cases(&f.url()) {
        let reply = send(port, &paths, &c).await;
        eprintln!("{:<50} → {} {}", c.name, reply.status, reply.body.chars().take(160).collect::<String>());
        if !c.want.contains(&reply.status) {
            failures.push(format!("{}: want {:?}, got {} {}", c.name, c.want, reply.status, reply.body));
        }
        if reply.status >= 400 && reply.status != 0 && reply.status != 431 && reply.status != 414 {
            let parsed = reply.json();
            if !parsed["error"].is_string() {
                failures.push(format!("{}: the error body is not JSON with an `error`: {}", c.name, reply.body));
            }
        }
    }
    assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));

    // Nothing was recorded, nothing changed, and the operator still answers.
    let after = f.apps().get("shop").await.expect("app");
    assert!(after.annotations().get("tugboat.dev/trigger").is_none(), "no trigger recorded");
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(
        after.status.as_ref().map(|s| s.deployments.len()),
        before.status.as_ref().map(|s| s.deployments.len()),
        "no deployment"
    );
    let good = post(port, &format!("{generic}?SERVICE_TAG=still-alive"), &[], b"").await;
    assert_eq!(good.status, 202, "the endpoint still works: {good:?}");
}

/// A trigger held by a closed change window collects the calls that arrive meanwhile. A call
/// whose variables would make the held trigger larger than an application holds answers 413
/// with the reason, and the held trigger stays as it was (before: accepted until the API
/// server refused the annotation, then every later call answered 503).
#[tokio::test]
async fn a_call_that_would_outgrow_the_held_trigger_answers_413_and_keeps_it() {
    let names: Vec<String> = (0..72).map(|n| format!("V{n:02}")).collect();
    let data: String = names.iter().map(|name| format!("  {name}: \"${{{name}:-x}}\"\n")).collect();
    let files = vec![(
        "deploy/values.yaml",
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: values\ndata:\n{data}"),
    )];
    let Some(f) = Fixture::start("outgrow", &files, &["--rate-limit-per-source", "0"]).await else { return };
    let head = f.head();
    // Closed but for one minute a year: every call is held.
    let closed =
        json!({"changeWindows": [{"kind": "allow", "schedule": "0 0 1 1 *", "duration": "1m", "timeZone": "UTC"}]});
    f.create_app("shop", f.app_spec(json!({}))).await;
    f.wait_app("shop", "first deployment", |a| is_ready_at(a, &head)).await;
    f.apps()
        .patch("shop", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(json!({"spec": closed})))
        .await
        .expect("close the windows");
    let path = f.create_webhook("ci", json!({"targets": [{"name": "shop"}]})).await;
    let value = "v".repeat(4000);
    let form = |range: std::ops::Range<usize>| -> Vec<u8> {
        names[range].iter().map(|name| format!("{name}={value}")).collect::<Vec<_>>().join("&").into_bytes()
    };
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let held = f
        .eventually("the variables are known", || async {
            let reply = post(f.operator.trigger_port, &path, &headers, &form(0..12)).await;
            (reply.status == 202).then_some(reply)
        })
        .await;
    assert!(held.json()["deferredUntil"].is_string(), "held by the window: {held:?}");
    let annotation = |app: tugboat::api::GitOpsApplication| app.annotations().get("tugboat.dev/trigger").cloned();
    let before = annotation(f.apps().get("shop").await.expect("app")).expect("a held trigger");

    for range in [12..24, 24..36, 36..48, 48..60, 60..72] {
        let reply = post(f.operator.trigger_port, &path, &headers, &form(range.clone())).await;
        assert_eq!(reply.status, 413, "{range:?}: {reply:?}");
        let error = reply.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains("\"shop\"") && error.contains("the held trigger is kept"), "{error}");
    }
    assert_eq!(annotation(f.apps().get("shop").await.expect("app")), Some(before), "the held trigger is unchanged");
    // A call that fits is still merged into it.
    let small = post(f.operator.trigger_port, &path, &headers, b"V00=small").await;
    assert_eq!(small.status, 202, "{small:?}");
}
