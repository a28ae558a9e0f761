//! The Git egress guard: before git talks to a remote, the repository's host is resolved and
//! every address checked against the policy (`crate::egress`), and git is then pinned to the
//! checked addresses, so a DNS answer that changes in between (rebinding) cannot send it
//! elsewhere: curl gets `http.curloptResolve`, ssh gets the address in the URL and the original
//! name as `HostKeyAlias`, so `known_hosts` is still matched on the name.
//!
//! HTTP redirects are not followed: their target would be resolved by curl, unchecked. With an
//! HTTP proxy (`https_proxy`), the addresses checked are those the operator resolves; the
//! proxy does the connecting and is where egress to its targets is controlled.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::SourceError;
use super::url::{RepoUrl, Transport};
use crate::egress::EgressPolicy;

/// How git reaches a remote that passed the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The remote git is given: the URL as written, or for ssh to a host name, the URL with the
    /// checked address in the name's place.
    pub url: String,
    /// `-c` settings for git (`http.curloptResolve`, `http.followRedirects`).
    pub config: Vec<String>,
    /// The name ssh looks the host key up under (`[host]:port` off port 22), when the URL
    /// itself names an address.
    pub host_key_alias: Option<String>,
}

impl Route {
    /// Lets the guard decide: resolves the host (or takes its literal address, or an entry of
    /// `static_hosts`), checks every address and pins git to them. `file://` needs no network.
    ///
    /// # Errors
    /// `EgressRefused` naming the first refused address; `Unreachable` when the host does not
    /// resolve within `timeout`.
    pub async fn to(
        url: &RepoUrl,
        policy: &EgressPolicy,
        static_hosts: &BTreeMap<String, Vec<IpAddr>>,
        timeout: Duration,
    ) -> Result<Route, SourceError> {
        if url.transport == Transport::File {
            return Ok(Route { url: url.raw.clone(), config: Vec::new(), host_key_alias: None });
        }
        let addresses = match (url.host.parse::<IpAddr>(), static_hosts.get(&url.host)) {
            (Ok(literal), _) => vec![literal],
            (Err(_), Some(fixed)) => fixed.clone(),
            (Err(_), None) => resolve(url, timeout).await?,
        };
        check(url, policy, &addresses)?;
        Ok(pin(url, &addresses))
    }
}

/// Every address must pass: a name that also resolves to a refused address is refused, however
/// harmless its other addresses are.
pub(crate) fn check(url: &RepoUrl, policy: &EgressPolicy, addresses: &[IpAddr]) -> Result<(), SourceError> {
    if addresses.is_empty() {
        return Err(unresolved(url, "no address"));
    }
    for &address in addresses {
        if let Err(blocked) = policy.check(address) {
            return Err(SourceError::EgressRefused {
                url: url.display.clone(),
                host: url.host.clone(),
                address,
                blocked,
            });
        }
    }
    Ok(())
}

/// The route to checked `addresses` (at least one): a host name is replaced by them, so git never
/// resolves it again; a literal address needs no pin.
pub(crate) fn pin(url: &RepoUrl, addresses: &[IpAddr]) -> Route {
    let named = url.host.parse::<IpAddr>().is_err();
    match (url.transport, addresses.first()) {
        (Transport::Http, _) => {
            let mut config = vec!["http.followRedirects=false".to_owned()];
            if named {
                let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
                config.push(format!("http.curloptResolve={}:{}:{}", url.host, url.port, list.join(",")));
            }
            Route { url: url.raw.clone(), config, host_key_alias: None }
        }
        // ssh takes one address: the resolver's first choice (RFC 6724 order).
        (Transport::Ssh, Some(&first)) if named => {
            let alias = if url.port == 22 { url.host.clone() } else { format!("[{}]:{}", url.host, url.port) };
            Route { url: url.raw_at(first), config: Vec::new(), host_key_alias: Some(alias) }
        }
        _ => Route { url: url.raw.clone(), config: Vec::new(), host_key_alias: None },
    }
}

/// The host's addresses from the system resolver, deduplicated, in its order.
async fn resolve(url: &RepoUrl, timeout: Duration) -> Result<Vec<IpAddr>, SourceError> {
    let lookup = tokio::net::lookup_host((url.host.as_str(), url.port));
    let found = match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => return Err(unresolved(url, &error.to_string())),
        Err(_elapsed) => return Err(unresolved(url, "timed out")),
    };
    let mut addresses: Vec<IpAddr> = Vec::new();
    for address in found.map(|a| a.ip()) {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(addresses)
}

fn unresolved(url: &RepoUrl, why: &str) -> SourceError {
    SourceError::Unreachable { url: url.display.clone(), message: format!("cannot resolve host {}: {why}", url.host) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::Blocked;

    fn url(text: &str) -> RepoUrl {
        super::super::url::parse(text, true).expect("url")
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().expect("ip")).collect()
    }

    #[test]
    fn every_address_must_pass_and_the_refusal_names_host_address_and_why() {
        let git = EgressPolicy::for_git(Vec::new(), false);
        let u = url("https://git.example.com/team/app.git");
        type Case<'a> = (&'a [&'a str], Option<(&'a str, Blocked)>);
        let cases: &[Case] = &[
            (&["140.82.112.3"], None),
            (&["10.0.0.5", "fd00::5"], None),
            (&["169.254.169.254"], Some(("169.254.169.254", Blocked::LinkLocal))),
            (&["140.82.112.3", "127.0.0.1"], Some(("127.0.0.1", Blocked::Loopback))),
            (&["::ffff:169.254.169.254"], Some(("::ffff:169.254.169.254", Blocked::LinkLocal))),
            (&["fd00:ec2::254"], Some(("fd00:ec2::254", Blocked::Metadata))),
            (&["0.0.0.0"], Some(("0.0.0.0", Blocked::Unspecified))),
        ];
        for (addresses, refused) in cases {
            let result = check(&u, &git, &ips(addresses));
            let expected = refused.map(|(address, blocked)| SourceError::EgressRefused {
                url: "https://git.example.com/team/app.git".into(),
                host: "git.example.com".into(),
                address: address.parse().expect("ip"),
                blocked,
            });
            assert_eq!(result.err(), expected, "{addresses:?}");
        }
        assert_eq!(check(&u, &git, &[]).unwrap_err().reason().as_str(), "Unreachable");
        let strict = EgressPolicy::for_git(Vec::new(), true);
        assert!(matches!(
            check(&u, &strict, &ips(&["10.0.0.5"])),
            Err(SourceError::EgressRefused { blocked: Blocked::Private, .. })
        ));
    }

    #[test]
    fn git_is_pinned_to_the_checked_addresses() {
        let http = pin(&url("https://tok@git.example.com/a.git"), &ips(&["10.0.0.5", "fd00::5"]));
        assert_eq!(http.url, "https://tok@git.example.com/a.git", "the name stays: TLS checks the certificate on it");
        assert_eq!(
            http.config,
            ["http.followRedirects=false", "http.curloptResolve=git.example.com:443:10.0.0.5,fd00::5"]
        );
        let port = pin(&url("http://git.example.com:3000/a.git"), &ips(&["10.0.0.5"]));
        assert_eq!(port.config[1], "http.curloptResolve=git.example.com:3000:10.0.0.5");
        let literal = pin(&url("http://10.0.0.5:3000/a.git"), &ips(&["10.0.0.5"]));
        assert_eq!(
            (literal.config.len(), literal.host_key_alias),
            (1, None),
            "nothing to resolve, redirects still off"
        );

        let ssh = pin(&url("ssh://git@git.example.com:2222/a.git"), &ips(&["10.0.0.5"]));
        assert_eq!(ssh.url, "ssh://git@10.0.0.5:2222/a.git");
        assert_eq!(ssh.host_key_alias.as_deref(), Some("[git.example.com]:2222"), "known_hosts spelling off port 22");
        let scp = pin(&url("git@GitHub.com:team/a.git"), &ips(&["fd00::5", "10.0.0.5"]));
        assert_eq!((scp.url.as_str(), scp.host_key_alias.as_deref()), ("git@[fd00::5]:team/a.git", Some("github.com")));
        assert!(scp.config.is_empty());
        let ssh_literal = pin(&url("ssh://git@10.0.0.5/a.git"), &ips(&["10.0.0.5"]));
        assert_eq!((ssh_literal.url.as_str(), ssh_literal.host_key_alias), ("ssh://git@10.0.0.5/a.git", None));
    }

    #[tokio::test]
    async fn literal_and_static_hosts_need_no_resolver_and_file_urls_no_check() {
        let git = EgressPolicy::for_git(Vec::new(), false);
        let none = BTreeMap::new();
        let timeout = Duration::from_secs(5);
        let metadata = url("http://169.254.169.254/latest/meta-data.git");
        let err = Route::to(&metadata, &git, &none, timeout).await.unwrap_err();
        assert!(matches!(err, SourceError::EgressRefused { blocked: Blocked::LinkLocal, .. }), "{err}");
        let hosts = BTreeMap::from([("git.test".to_owned(), ips(&["127.0.0.1"]))]);
        let test_server = url("http://git.test:8080/a.git");
        assert!(matches!(Route::to(&test_server, &git, &hosts, timeout).await, Err(SourceError::EgressRefused { .. })));
        let allowed = EgressPolicy::for_git(vec!["127.0.0.0/8".parse().expect("cidr")], false);
        let route = Route::to(&test_server, &allowed, &hosts, timeout).await.expect("allowed");
        assert_eq!(route.config[1], "http.curloptResolve=git.test:8080:127.0.0.1");
        let file = Route::to(&url("file:///srv/a.git"), &git, &none, timeout).await.expect("file");
        assert_eq!((file.url.as_str(), file.config.len()), ("file:///srv/a.git", 0));
    }
}
