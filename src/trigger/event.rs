//! What a verified call says happened: a Git push (which repository, which ref), a ping, an
//! image push, or something else, read from each provider's real payload shapes.
//!
//! Payloads are walked as [`serde_json::Value`] with checked lookups rather than typed
//! structs: only the fields tugboat uses are required, so unrelated provider changes (or a
//! `commits: "x"`) don't break triggers, and a wrong type where it matters is a named error.

use http::HeaderMap;
use serde_json::Value;

use super::Provider;

pub use crate::source::url::{normalize_repo_url, repo_matches};

/// The event a call carries, as far as tugboat cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderEvent {
    /// A Git push. Applications match on `repo_urls` (via [`repo_matches`]) and `reference`.
    Push {
        /// Every URL the payload offers for the repository (clone, SSH, web), deduplicated.
        repo_urls: Vec<String>,
        reference: RefName,
        /// Commit the ref now points at; all zeros (see [`ProviderEvent::is_deletion`]) or
        /// `None` when the ref was deleted.
        after: Option<String>,
    },
    /// The provider testing the hook (GitHub/Gitea `ping`, Bitbucket `diagnostics:ping`).
    Ping,
    /// A container image push (Docker Hub, Harbor).
    ImagePush { repository: String, tag: Option<String> },
    /// Any other event, by the provider's name for it (`generic` for generic calls).
    Other(String),
}

impl ProviderEvent {
    /// A push that deleted its ref: nothing to deploy.
    pub fn is_deletion(&self) -> bool {
        match self {
            ProviderEvent::Push { after: None, .. } => true,
            ProviderEvent::Push { after: Some(sha), .. } => !sha.is_empty() && sha.bytes().all(|b| b == b'0'),
            _ => false,
        }
    }
}

/// A pushed ref, split so applications can match a branch or a tag by its short name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefName {
    /// `refs/heads/<name>`.
    Branch(String),
    /// `refs/tags/<name>`.
    Tag(String),
    /// Anything else (`refs/notes/…`, or a ref without the `refs/` prefix), verbatim.
    Other(String),
}

impl RefName {
    /// Splits a full ref name; an empty ref, or `refs/heads/` with no name, is an error.
    pub fn parse(full: &str) -> Result<RefName, PayloadError> {
        let named = |name: &str, make: fn(String) -> RefName| {
            if name.is_empty() { Err(PayloadError::EmptyRef) } else { Ok(make(name.to_owned())) }
        };
        if full.is_empty() {
            Err(PayloadError::EmptyRef)
        } else if let Some(branch) = full.strip_prefix("refs/heads/") {
            named(branch, RefName::Branch)
        } else if let Some(tag) = full.strip_prefix("refs/tags/") {
            named(tag, RefName::Tag)
        } else {
            Ok(RefName::Other(full.to_owned()))
        }
    }
}

/// Why a payload could not be understood (400), or a payload variable could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the {0} header is missing")]
    MissingEventHeader(&'static str),
    #[error("the body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the payload has no {0}")]
    Missing(String),
    #[error("{field} in the payload should be {expected}")]
    WrongType { field: String, expected: &'static str },
    #[error("the payload's ref is empty")]
    EmptyRef,
    #[error("the payload names no repository URL")]
    NoRepoUrl,
    #[error("variablesFromPayload {variable}: {path} is not a valid JSONPath: {reason}")]
    BadPath { variable: String, path: String, reason: String },
    #[error("variablesFromPayload {variable}: {path} matches nothing in the payload")]
    NoMatch { variable: String, path: String },
    #[error("variablesFromPayload {variable}: {path} matches {count} values, expected one")]
    Ambiguous { variable: String, path: String, count: usize },
    #[error("variablesFromPayload {variable}: {path} is {found}, expected a string, number or boolean")]
    NotScalar { variable: String, path: String, found: &'static str },
    #[error("variablesFromPayload {variable}: the value is longer than {max} bytes")]
    TooLong { variable: String, max: usize },
}

/// Longest event name kept from a header; longer ones are cut (they end up in status).
const MAX_EVENT_NAME: usize = 100;

/// Reads the event of an already verified call. Generic calls accept any body, even an
/// empty one or an HTML form, and are always `Other("generic")`.
pub fn parse_event(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<ProviderEvent, PayloadError> {
    match provider {
        Provider::Generic => Ok(ProviderEvent::Other("generic".into())),
        Provider::Standard => Ok(standard(body)),
        Provider::Github => match event_header(headers, &["x-github-event"], "X-GitHub-Event")?.as_str() {
            "push" => github_like_push(&json(body)?),
            "ping" => Ok(ProviderEvent::Ping),
            other => Ok(ProviderEvent::Other(other.to_owned())),
        },
        Provider::Gitea => {
            let names = ["x-gitea-event", "x-forgejo-event", "x-gogs-event", "x-github-event"];
            match event_header(headers, &names, "X-Gitea-Event")?.as_str() {
                "push" => github_like_push(&json(body)?),
                "ping" => Ok(ProviderEvent::Ping),
                other => Ok(ProviderEvent::Other(other.to_owned())),
            }
        }
        Provider::Gitlab => match event_header(headers, &["x-gitlab-event"], "X-Gitlab-Event")?.as_str() {
            "Push Hook" | "Tag Push Hook" => gitlab_push(&json(body)?),
            // System hooks carry every kind of event; push ones have the project hook's shape.
            "System Hook" => {
                let value = json(body)?;
                match opt_str(&value, "/object_kind", "object_kind")?.or(opt_str(&value, "/event_name", "event_name")?)
                {
                    Some("push" | "tag_push") => gitlab_push(&value),
                    Some(other) => Ok(ProviderEvent::Other(truncate(other))),
                    None => Ok(ProviderEvent::Other("System Hook".into())),
                }
            }
            other => Ok(ProviderEvent::Other(other.to_owned())),
        },
        Provider::Bitbucket => match event_header(headers, &["x-event-key"], "X-Event-Key")?.as_str() {
            "repo:push" => bitbucket_cloud_push(&json(body)?),
            "repo:refs_changed" => bitbucket_server_push(&json(body)?),
            "diagnostics:ping" => Ok(ProviderEvent::Ping),
            other => Ok(ProviderEvent::Other(other.to_owned())),
        },
        Provider::Dockerhub => {
            let value = json(body)?;
            let repository = req_str(&value, "/repository/repo_name", "repository.repo_name")?;
            let tag = opt_str(&value, "/push_data/tag", "push_data.tag")?;
            Ok(ProviderEvent::ImagePush { repository: repository.to_owned(), tag: tag.map(str::to_owned) })
        }
        Provider::Harbor => harbor(&json(body)?),
    }
}

/// GitHub, Gitea, Forgejo and Gogs push payloads share one shape.
fn github_like_push(value: &Value) -> Result<ProviderEvent, PayloadError> {
    let reference = RefName::parse(req_str(value, "/ref", "ref")?)?;
    let after = opt_str(value, "/after", "after")?.map(str::to_owned);
    require_object(value, "/repository", "repository")?;
    let urls = ["clone_url", "ssh_url", "html_url", "git_url", "url", "svn_url"].map(|f| format!("/repository/{f}"));
    let repo_urls = collect_urls(value, urls.iter().map(String::as_str))?;
    Ok(ProviderEvent::Push { repo_urls, reference, after })
}

/// GitLab `Push Hook` / `Tag Push Hook`; `checkout_sha` is the commit to deploy (for an
/// annotated tag `after` is the tag object), and is null when the ref was deleted.
fn gitlab_push(value: &Value) -> Result<ProviderEvent, PayloadError> {
    let reference = RefName::parse(req_str(value, "/ref", "ref")?)?;
    let after = match opt_str(value, "/checkout_sha", "checkout_sha")? {
        Some(sha) => Some(sha.to_owned()),
        None => opt_str(value, "/after", "after")?.map(str::to_owned),
    };
    if value.pointer("/project").is_none() && value.pointer("/repository").is_none() {
        return Err(PayloadError::Missing("project".into()));
    }
    let pointers = [
        "/project/git_http_url",
        "/project/git_ssh_url",
        "/project/web_url",
        "/project/http_url",
        "/project/ssh_url",
        "/repository/git_http_url",
        "/repository/git_ssh_url",
        "/repository/homepage",
        "/repository/url",
    ];
    Ok(ProviderEvent::Push { repo_urls: collect_urls(value, pointers)?, reference, after })
}

/// Bitbucket Cloud `repo:push`. One push may change several refs; the first change that
/// still has a `new` side is reported, else the first deleted ref (with `after: None`).
fn bitbucket_cloud_push(value: &Value) -> Result<ProviderEvent, PayloadError> {
    let repository = require_object(value, "/repository", "repository")?;
    let mut repo_urls = urls_at(value, ["/repository/links/html/href"])?;
    if let Some(full_name) = opt_str(value, "/repository/full_name", "repository.full_name")? {
        // The web link's host, so Bitbucket-hosted mirrors of other hosts stay right.
        let host = repo_urls.first().and_then(|u| crate::source::url::host_of(u)).unwrap_or("bitbucket.org").to_owned();
        push_unique(&mut repo_urls, format!("https://{host}/{full_name}.git"));
        push_unique(&mut repo_urls, format!("git@{host}:{full_name}.git"));
    }
    if repo_urls.is_empty() {
        return Err(if repository.is_empty() {
            PayloadError::Missing("repository".into())
        } else {
            PayloadError::NoRepoUrl
        });
    }
    let changes = req_array(value, "/push/changes", "push.changes")?;
    let pick = |side: &str| changes.iter().find_map(|c| c.get(side).filter(|s| s.is_object()));
    let (side, deleted) = match (pick("new"), pick("old")) {
        (Some(new), _) => (new, false),
        (None, Some(old)) => (old, true),
        (None, None) => return Err(PayloadError::Missing("push.changes[].new".into())),
    };
    let name = req_str(side, "/name", "push.changes[].new.name")?;
    if name.is_empty() {
        return Err(PayloadError::EmptyRef);
    }
    let reference = match req_str(side, "/type", "push.changes[].new.type")? {
        "branch" | "named_branch" => RefName::Branch(name.to_owned()),
        "tag" | "annotated_tag" => RefName::Tag(name.to_owned()),
        _ => RefName::Other(name.to_owned()),
    };
    let after = if deleted { None } else { opt_str(side, "/target/hash", "push.changes[].new.target.hash")? };
    Ok(ProviderEvent::Push { repo_urls, reference, after: after.map(str::to_owned) })
}

/// Bitbucket Server / Data Center `repo:refs_changed` (first change reported, as above).
fn bitbucket_server_push(value: &Value) -> Result<ProviderEvent, PayloadError> {
    require_object(value, "/repository", "repository")?;
    let mut repo_urls = Vec::new();
    for group in ["clone", "self"] {
        let pointer = format!("/repository/links/{group}");
        if let Some(links) = value.pointer(&pointer) {
            let links = links.as_array().ok_or_else(|| wrong(&pointer, "an array"))?;
            for link in links {
                if let Some(href) = opt_str(link, "/href", "repository.links[].href")? {
                    push_unique(&mut repo_urls, href.to_owned());
                }
            }
        }
    }
    if repo_urls.is_empty() {
        return Err(PayloadError::NoRepoUrl);
    }
    let changes = req_array(value, "/changes", "changes")?;
    let change = changes.first().ok_or_else(|| PayloadError::Missing("changes[0]".into()))?;
    let reference = RefName::parse(req_str(change, "/ref/id", "changes[].ref.id")?)?;
    let deleted = opt_str(change, "/type", "changes[].type")? == Some("DELETE");
    let after = if deleted { None } else { opt_str(change, "/toHash", "changes[].toHash")?.map(str::to_owned) };
    Ok(ProviderEvent::Push { repo_urls, reference, after })
}

/// Harbor 2.x default format; `type` is `PUSH_ARTIFACT` for pushes (1.x used `pushImage`).
fn harbor(value: &Value) -> Result<ProviderEvent, PayloadError> {
    let kind = req_str(value, "/type", "type")?;
    if kind != "PUSH_ARTIFACT" && kind != "pushImage" {
        return Ok(ProviderEvent::Other(truncate(kind)));
    }
    let repository = req_str(value, "/event_data/repository/repo_full_name", "event_data.repository.repo_full_name")?;
    let resources = req_array(value, "/event_data/resources", "event_data.resources")?;
    let mut tag = None;
    for resource in resources {
        if let Some(found) = opt_str(resource, "/tag", "event_data.resources[].tag")?.filter(|t| !t.is_empty()) {
            tag = Some(found.to_owned());
            break;
        }
    }
    Ok(ProviderEvent::ImagePush { repository: repository.to_owned(), tag })
}

/// Standard Webhooks bodies are JSON with a `type`; anything else is still a valid call.
fn standard(body: &[u8]) -> ProviderEvent {
    let kind = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("type")?.as_str().map(truncate));
    ProviderEvent::Other(kind.unwrap_or_else(|| "generic".into()))
}

fn json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(PayloadError::NotJson)
}

/// The first of `names` present, as text (cut to a sane length).
fn event_header(headers: &HeaderMap, names: &[&str], shown: &'static str) -> Result<String, PayloadError> {
    let value = names.iter().find_map(|n| headers.get(*n)).ok_or(PayloadError::MissingEventHeader(shown))?;
    Ok(truncate(&String::from_utf8_lossy(value.as_bytes())))
}

fn truncate(text: &str) -> String {
    let end = text.char_indices().nth(MAX_EVENT_NAME).map_or(text.len(), |(i, _)| i);
    text.get(..end).unwrap_or(text).trim().to_owned()
}

/// The URLs at `pointers`, at least one.
fn collect_urls<'a>(value: &Value, pointers: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, PayloadError> {
    let urls = urls_at(value, pointers)?;
    if urls.is_empty() { Err(PayloadError::NoRepoUrl) } else { Ok(urls) }
}

fn urls_at<'a>(value: &Value, pointers: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, PayloadError> {
    let mut urls = Vec::new();
    for pointer in pointers {
        if let Some(url) = opt_str(value, pointer, pointer)? {
            push_unique(&mut urls, url.to_owned());
        }
    }
    Ok(urls)
}

fn push_unique(urls: &mut Vec<String>, url: String) {
    if !url.trim().is_empty() && !urls.contains(&url) {
        urls.push(url);
    }
}

/// A string at `pointer`; absent or null is `None`, another type is an error.
fn opt_str<'a>(value: &'a Value, pointer: &str, field: &str) -> Result<Option<&'a str>, PayloadError> {
    match value.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(wrong(field, "a string")),
    }
}

fn req_str<'a>(value: &'a Value, pointer: &str, field: &str) -> Result<&'a str, PayloadError> {
    opt_str(value, pointer, field)?.ok_or_else(|| PayloadError::Missing(field.to_owned()))
}

fn req_array<'a>(value: &'a Value, pointer: &str, field: &str) -> Result<&'a Vec<Value>, PayloadError> {
    match value.pointer(pointer) {
        None | Some(Value::Null) => Err(PayloadError::Missing(field.to_owned())),
        Some(found) => found.as_array().ok_or_else(|| wrong(field, "an array")),
    }
}

fn require_object<'a>(
    value: &'a Value,
    pointer: &str,
    field: &str,
) -> Result<&'a serde_json::Map<String, Value>, PayloadError> {
    match value.pointer(pointer) {
        None | Some(Value::Null) => Err(PayloadError::Missing(field.to_owned())),
        Some(found) => found.as_object().ok_or_else(|| wrong(field, "an object")),
    }
}

fn wrong(field: &str, expected: &'static str) -> PayloadError {
    PayloadError::WrongType { field: field.trim_start_matches('/').replace('/', "."), expected }
}
