//! Provider payload fixtures and hostile shapes.

use http::{HeaderMap, HeaderName, HeaderValue};
use tugboat::trigger::Provider;
use tugboat::trigger::event::{PayloadError, ProviderEvent, RefName, parse_event, repo_matches};

type ErrorCheck = fn(&PayloadError) -> bool;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/payloads/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn with(name: &'static str, value: &'static str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    map
}

fn push(event: Result<ProviderEvent, PayloadError>) -> (Vec<String>, RefName, Option<String>) {
    match event {
        Ok(ProviderEvent::Push { repo_urls, reference, after }) => (repo_urls, reference, after),
        other => panic!("expected a push, got {other:?}"),
    }
}

#[test]
fn github_push_fixture() {
    let (urls, reference, after) =
        push(parse_event(Provider::Github, &with("x-github-event", "push"), &fixture("github_push.json")));
    assert_eq!(reference, RefName::Branch("main".into()));
    assert_eq!(after.as_deref(), Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"));
    for url in [
        "https://github.com/Codertocat/Hello-World.git",
        "git@github.com:Codertocat/Hello-World.git",
        "https://github.com/Codertocat/Hello-World",
        "git://github.com/Codertocat/Hello-World.git",
    ] {
        assert!(urls.iter().any(|u| u == url), "{url} in {urls:?}");
    }
    assert_eq!(urls.len(), 4, "deduplicated: {urls:?}");
    assert!(repo_matches("ssh://git@github.com/codertocat/hello-world.git", &urls));
}

#[test]
fn github_ping_and_other_events() {
    let body = fixture("github_ping.json");
    assert_eq!(parse_event(Provider::Github, &with("x-github-event", "ping"), &body).ok(), Some(ProviderEvent::Ping));
    let other = parse_event(Provider::Github, &with("x-github-event", "pull_request"), b"not even json");
    assert_eq!(other.ok(), Some(ProviderEvent::Other("pull_request".into())));
    assert!(matches!(
        parse_event(Provider::Github, &HeaderMap::new(), &body),
        Err(PayloadError::MissingEventHeader("X-GitHub-Event"))
    ));
}

#[test]
fn gitlab_push_and_tag_push_fixtures() {
    let (urls, reference, after) =
        push(parse_event(Provider::Gitlab, &with("x-gitlab-event", "Push Hook"), &fixture("gitlab_push.json")));
    assert_eq!(reference, RefName::Branch("master".into()));
    assert_eq!(after.as_deref(), Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"));
    assert!(urls.contains(&"git@example.com:mike/diaspora.git".to_owned()));
    assert!(urls.contains(&"http://example.com/mike/diaspora.git".to_owned()));
    assert!(repo_matches("https://example.com/mike/diaspora", &urls));

    let (urls, reference, after) =
        push(parse_event(Provider::Gitlab, &with("x-gitlab-event", "Tag Push Hook"), &fixture("gitlab_tag_push.json")));
    assert_eq!(reference, RefName::Tag("v1.0.0".into()));
    assert_eq!(after.as_deref(), Some("5937ac0a7beb003549fc5fd26fc247adbce4a52e"), "checkout_sha, not the tag object");
    assert!(urls.contains(&"ssh://git@example.com/jsmith/example.git".to_owned()));

    let system = parse_event(Provider::Gitlab, &with("x-gitlab-event", "System Hook"), &fixture("gitlab_push.json"));
    assert!(matches!(system, Ok(ProviderEvent::Push { .. })));
    let system_other =
        parse_event(Provider::Gitlab, &with("x-gitlab-event", "System Hook"), br#"{"event_name":"project_create"}"#);
    assert_eq!(system_other.ok(), Some(ProviderEvent::Other("project_create".into())));
}

#[test]
fn gitea_push_fixture() {
    let (urls, reference, after) =
        push(parse_event(Provider::Gitea, &with("x-gitea-event", "push"), &fixture("gitea_push.json")));
    assert_eq!(reference, RefName::Branch("develop".into()));
    assert_eq!(after.as_deref(), Some("bffeb74224043ba2feb48d137756c8a9331c449a"));
    assert!(repo_matches("https://gitea.example.com/gitea/webhooks.git", &urls));
    assert!(repo_matches("ssh://gitea@gitea.example.com:2222/gitea/webhooks.git", &urls));
    let forgejo = parse_event(Provider::Gitea, &with("x-forgejo-event", "push"), &fixture("gitea_push.json"));
    assert!(matches!(forgejo, Ok(ProviderEvent::Push { .. })));
}

#[test]
fn bitbucket_cloud_and_server_fixtures() {
    let (urls, reference, after) =
        push(parse_event(Provider::Bitbucket, &with("x-event-key", "repo:push"), &fixture("bitbucket_push.json")));
    assert_eq!(reference, RefName::Branch("main".into()));
    assert_eq!(after.as_deref(), Some("709d658dc5b6d6afcd46049c2f332ee3f515a67d"));
    assert!(urls.contains(&"https://bitbucket.org/teamawesome/shop-api".to_owned()));
    assert!(urls.contains(&"git@bitbucket.org:teamawesome/shop-api.git".to_owned()));
    assert!(repo_matches("git@bitbucket.org:teamawesome/shop-api.git", &urls));

    let (urls, reference, after) = push(parse_event(
        Provider::Bitbucket,
        &with("x-event-key", "repo:refs_changed"),
        &fixture("bitbucket_server_refs_changed.json"),
    ));
    assert_eq!(reference, RefName::Tag("v2.3.0".into()));
    assert_eq!(after.as_deref(), Some("22671f0349a7b6e5b52d5e9b6d0e5f7ec39f196b"));
    assert!(repo_matches("https://bitbucket.example.com/scm/myproject/test-repo.git", &urls));
    assert!(repo_matches("ssh://git@bitbucket.example.com:7999/myproject/test-repo.git", &urls));

    let ping = parse_event(Provider::Bitbucket, &with("x-event-key", "diagnostics:ping"), b"{}");
    assert_eq!(ping.ok(), Some(ProviderEvent::Ping));
}

#[test]
fn bitbucket_branch_deletion_has_no_after() {
    let body = br#"{"repository":{"full_name":"a/b","links":{"html":{"href":"https://bitbucket.org/a/b"}}},
        "push":{"changes":[{"old":{"type":"branch","name":"gone","target":{"hash":"abc"}},"new":null}]}}"#;
    let event = parse_event(Provider::Bitbucket, &with("x-event-key", "repo:push"), body);
    assert!(event.as_ref().is_ok_and(ProviderEvent::is_deletion), "{event:?}");
}

#[test]
fn image_registry_fixtures() {
    let hub = parse_event(Provider::Dockerhub, &HeaderMap::new(), &fixture("dockerhub_push.json"));
    assert_eq!(
        hub.ok(),
        Some(ProviderEvent::ImagePush { repository: "svendowideit/testhook".into(), tag: Some("1.4.2".into()) })
    );
    let harbor = parse_event(Provider::Harbor, &HeaderMap::new(), &fixture("harbor_push_artifact.json"));
    assert_eq!(
        harbor.ok(),
        Some(ProviderEvent::ImagePush { repository: "shop/api".into(), tag: Some("v1.7.3".into()) })
    );
    let pull = parse_event(Provider::Harbor, &HeaderMap::new(), br#"{"type":"PULL_ARTIFACT","event_data":{}}"#);
    assert_eq!(pull.ok(), Some(ProviderEvent::Other("PULL_ARTIFACT".into())));
}

#[test]
fn generic_and_standard_accept_any_body() {
    for body in [&b""[..], b"name=value&submit=Deploy", b"<html>", b"{\"type\":\"x\"}", &[0xff, 0xfe]] {
        assert_eq!(
            parse_event(Provider::Generic, &HeaderMap::new(), body).ok(),
            Some(ProviderEvent::Other("generic".into()))
        );
        assert!(parse_event(Provider::Standard, &HeaderMap::new(), body).is_ok());
    }
    let typed = parse_event(Provider::Standard, &HeaderMap::new(), br#"{"type":"image.pushed","data":{}}"#);
    assert_eq!(typed.ok(), Some(ProviderEvent::Other("image.pushed".into())));
}

#[test]
fn ref_names() {
    let cases = [
        ("refs/heads/main", Some(RefName::Branch("main".into()))),
        ("refs/heads/feature/x", Some(RefName::Branch("feature/x".into()))),
        ("refs/tags/v1", Some(RefName::Tag("v1".into()))),
        ("main", Some(RefName::Other("main".into()))),
        ("refs/notes/commits", Some(RefName::Other("refs/notes/commits".into()))),
        ("", None),
        ("refs/heads/", None),
    ];
    for (full, expected) in cases {
        assert_eq!(RefName::parse(full).ok(), expected, "{full}");
    }
}

#[test]
fn hostile_payloads_give_clean_errors() {
    let github = with("x-github-event", "push");
    let repo = r#""repository":{"clone_url":"https://github.com/a/b.git"}"#;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(String, ErrorCheck)> = vec![
        ("".into(), |e| matches!(e, PayloadError::NotJson(_))),
        ("{".into(), |e| matches!(e, PayloadError::NotJson(_))),
        ("[]".into(), |e| matches!(e, PayloadError::Missing(f) if f == "ref")),
        (r#"{"ref":"refs/heads/main"}"#.into(), |e| matches!(e, PayloadError::Missing(f) if f == "repository")),
        (
            r#"{"ref":"refs/heads/main","repository":"x"}"#.into(),
            |e| matches!(e, PayloadError::WrongType { field, .. } if field == "repository"),
        ),
        (r#"{"ref":"refs/heads/main","repository":{}}"#.into(), |e| matches!(e, PayloadError::NoRepoUrl)),
        (format!(r#"{{"ref":"",{repo}}}"#), |e| matches!(e, PayloadError::EmptyRef)),
        (format!(r#"{{"ref":42,{repo}}}"#), |e| matches!(e, PayloadError::WrongType { field, .. } if field == "ref")),
        (
            r#"{"ref":"refs/heads/a","repository":{"clone_url":["x"]}}"#.into(),
            |e| matches!(e, PayloadError::WrongType { field, .. } if field == "repository.clone_url"),
        ),
        (deep, |e| matches!(e, PayloadError::NotJson(_))),
        (format!(r#"{{"ref":"refs/heads/a","after":1e999,{repo}}}"#), |e| matches!(e, PayloadError::NotJson(_))),
    ];
    for (body, check) in cases {
        match parse_event(Provider::Github, &github, body.as_bytes()) {
            Err(err) => assert!(check(&err), "{body:.80}: unexpected {err:?}"),
            Ok(event) => panic!("{body:.80}: parsed as {event:?}"),
        }
    }
    // Fields tugboat does not read may be anything; huge integers are fine too.
    let odd = format!(r#"{{"ref":"main","commits":"x","size":123456789012345678901234567890,{repo}}}"#);
    assert!(matches!(
        parse_event(Provider::Github, &github, odd.as_bytes()),
        Ok(ProviderEvent::Push { reference: RefName::Other(_), .. })
    ));

    let bitbucket = with("x-event-key", "repo:push");
    let no_changes =
        br#"{"repository":{"links":{"html":{"href":"https://bitbucket.org/a/b"}}},"push":{"changes":"x"}}"#;
    assert!(matches!(parse_event(Provider::Bitbucket, &bitbucket, no_changes), Err(PayloadError::WrongType { .. })));
    assert!(matches!(parse_event(Provider::Bitbucket, &bitbucket, b"{}"), Err(PayloadError::Missing(_))));
    assert!(matches!(
        parse_event(Provider::Dockerhub, &HeaderMap::new(), br#"{"push_data":{"tag":"x"}}"#),
        Err(PayloadError::Missing(_))
    ));
    let harbor_bad = br#"{"type":"PUSH_ARTIFACT","event_data":{"repository":{"repo_full_name":"a/b"},"resources":{}}}"#;
    assert!(matches!(
        parse_event(Provider::Harbor, &HeaderMap::new(), harbor_bad),
        Err(PayloadError::WrongType { .. })
    ));
}
