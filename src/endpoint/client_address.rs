//! Who is calling: the TCP peer, or, only when the peer is a trusted proxy, the address that
//! proxy reports in `Forwarded` (RFC 7239) or else `X-Forwarded-For`.
//!
//! Anyone can write these headers, so they are read only from peers in `--trusted-proxies`.
//! Proxies append the address they were called from, so the list is walked from the right:
//! past every trusted proxy to the first address that is not one, the address the outermost
//! trusted proxy was called from. What a caller wrote further left is never reached. A hop
//! that cannot be read on that walk, or a list that cannot be parsed, falls back to the peer:
//! bad headers never choose the caller's budget.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Peers whose forwarding headers are believed; empty (the default) believes nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(ranges: Vec<IpNet>) -> Self {
        Self(ranges)
    }

    fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(&address))
    }

    /// The caller of a request that came from `peer` with these headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer.to_canonical()) {
            return peer.to_canonical();
        }
        let (forwarded, x_forwarded_for) = (lines(headers, "forwarded"), lines(headers, "x-forwarded-for"));
        let forwarded: Vec<&str> = forwarded.iter().map(AsRef::as_ref).collect();
        let x_forwarded_for: Vec<&str> = x_forwarded_for.iter().map(AsRef::as_ref).collect();
        client_address(peer, self, &forwarded, &x_forwarded_for)
    }
}

/// The lines of one header, in order; values that are not visible ASCII become text that
/// parses as no address.
fn lines<'h>(headers: &'h HeaderMap, name: &str) -> Vec<Cow<'h, str>> {
    headers.get_all(name).iter().map(|value| String::from_utf8_lossy(value.as_bytes())).collect()
}

/// The caller, from the peer and the lines of its `Forwarded` and `X-Forwarded-For` headers
/// (in the order received). `Forwarded` wins when present; without either header, the peer.
pub fn client_address(peer: IpAddr, trusted: &TrustedProxies, forwarded: &[&str], x_forwarded_for: &[&str]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = if !forwarded.is_empty() {
        forwarded_hops(forwarded)
    } else {
        let hops = x_forwarded_for.iter().flat_map(|line| line.split(','));
        Some(hops.filter(|hop| !hop.trim().is_empty()).map(Cow::Borrowed).collect())
    };
    let Some(hops) = hops else { return peer };
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match node_address(hop) {
            Some(address) if trusted.contains(address) => nearest = address,
            Some(address) => return address,
            None => return peer,
        }
    }
    // Every hop is a trusted proxy: the farthest is the caller as far as anyone can tell.
    nearest
}

/// The `for=` value of each element of `Forwarded`, in order; `None` when the header cannot
/// be parsed, or when an element has no `for` or has it twice.
fn forwarded_hops<'a>(lines: &[&'a str]) -> Option<Vec<Cow<'a, str>>> {
    let mut hops = Vec::new();
    for line in lines {
        for element in split_unquoted(line, b',')? {
            if element.trim().is_empty() {
                continue;
            }
            let mut found = None;
            for pair in split_unquoted(element, b';')?.into_iter().filter(|pair| !pair.trim().is_empty()) {
                let (name, value) = pair.split_once('=')?;
                if name.trim().eq_ignore_ascii_case("for") && found.replace(unquote(value.trim())?).is_some() {
                    return None;
                }
            }
            hops.push(found?);
        }
    }
    Some(hops)
}

/// Splits at `separator` outside quoted strings; `None` when a quoted string is not closed.
fn split_unquoted(text: &str, separator: u8) -> Option<Vec<&str>> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (index, byte) in text.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if byte == separator && !quoted => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

/// A token as it is, or a quoted string without its quotes and escapes.
fn unquote(value: &str) -> Option<Cow<'_, str>> {
    let Some(inner) = value.strip_prefix('"') else { return Some(Cow::Borrowed(value)) };
    let inner = inner.strip_suffix('"')?;
    let mut text = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        text.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(Cow::Owned(text))
}

/// An address with or without a port: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`. `unknown`, obfuscated names and anything else: `None`.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let address = node
        .parse::<IpAddr>()
        .or_else(|_| node.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .or_else(|| node.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok().map(IpAddr::V6))?;
    Some(address.to_canonical())
}

/// Fuzz target entry point: [`client_address`] on arbitrary header lines, from a trusted and
/// an untrusted peer. Must never panic, and never reads headers from an untrusted peer.
pub fn fuzz_client_address(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (forwarded, x_forwarded_for) = text.split_once('\n').unwrap_or((&text, ""));
    let trusted = TrustedProxies::new(vec![
        "10.0.0.0/8".parse().expect("a literal CIDR"),
        "2001:db8::/32".parse().expect("a literal CIDR"),
    ]);
    let untrusted = IpAddr::from([192, 0, 2, 1]);
    for (forwarded, x_forwarded_for) in [(vec![forwarded], vec![x_forwarded_for]), (vec![], vec![forwarded])] {
        let _ = client_address(IpAddr::from([10, 1, 2, 3]), &trusted, &forwarded, &x_forwarded_for);
        assert_eq!(client_address(untrusted, &trusted, &forwarded, &x_forwarded_for), untrusted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("cidr"), "fd00::/8".parse().expect("cidr")])
    }

    #[test]
    fn the_caller_is_read_from_headers_of_trusted_peers_only() {
        // (peer, Forwarded lines, X-Forwarded-For lines, caller)
        let table: &[(&str, &[&str], &[&str], &str)] = &[
            // An untrusted peer: its headers are ignored, whatever they say.
            ("192.0.2.1", &["for=198.51.100.1"], &["198.51.100.2"], "192.0.2.1"),
            ("192.0.2.1", &[], &["10.0.0.1"], "192.0.2.1"),
            // A trusted peer without headers is the caller itself.
            ("10.0.0.5", &[], &[], "10.0.0.5"),
            // Forwarded (RFC 7239), with its quoting, ports and IPv6 forms.
            ("10.0.0.5", &["for=198.51.100.1"], &[], "198.51.100.1"),
            ("10.0.0.5", &["For=\"198.51.100.1:4711\";proto=https"], &[], "198.51.100.1"),
            ("10.0.0.5", &["for=\"[2001:db8::7]:4711\""], &[], "2001:db8::7"),
            ("10.0.0.5", &["for=\"[2001:db8::7]\""], &[], "2001:db8::7"),
            ("10.0.0.5", &["proto=http;for=198.51.100.1;by=10.0.0.5"], &[], "198.51.100.1"),
            ("10.0.0.5", &[";for=198.51.100.1;"], &[], "198.51.100.1"),
            ("10.0.0.5", &["for=\"198.51.100.1\";ext=\"a,b;c\""], &[], "198.51.100.1"),
            // Forwarded wins over X-Forwarded-For.
            ("10.0.0.5", &["for=198.51.100.1"], &["198.51.100.2"], "198.51.100.1"),
            // A chain: the right-most address that is not a trusted proxy.
            ("10.0.0.5", &["for=198.51.100.66, for=198.51.100.1, for=10.2.0.1"], &[], "198.51.100.1"),
            ("10.0.0.5", &["for=198.51.100.66", "for=198.51.100.1", "for=10.2.0.1"], &[], "198.51.100.1"),
            ("10.0.0.5", &[], &["198.51.100.66, 198.51.100.2, 10.1.0.1, 10.2.0.1"], "198.51.100.2"),
            ("10.0.0.5", &[], &["198.51.100.66", "198.51.100.2,10.1.0.1"], "198.51.100.2"),
            ("fd00::5", &[], &["2001:db8::9, fd00::1"], "2001:db8::9"),
            ("10.0.0.5", &[], &["198.51.100.2:8080"], "198.51.100.2"),
            ("10.0.0.5", &[], &["[2001:db8::9]:8080"], "2001:db8::9"),
            // IPv4-mapped IPv6 is judged as the IPv4 address.
            ("::ffff:10.0.0.5", &[], &["::ffff:198.51.100.2"], "198.51.100.2"),
            // Only trusted proxies in the chain: the farthest of them.
            ("10.0.0.5", &[], &["10.3.0.1, 10.2.0.1"], "10.3.0.1"),
            // Garbage a caller wrote left of what the proxies appended is never reached.
            ("10.0.0.5", &[], &["not an address, 198.51.100.2"], "198.51.100.2"),
            ("10.0.0.5", &["for=unknown, for=198.51.100.1"], &[], "198.51.100.1"),
            // Garbage that is reached, or a header that does not parse: the peer.
            ("10.0.0.5", &[], &["198.51.100.2, garbage"], "10.0.0.5"),
            ("10.0.0.5", &[], &["198.51.100.2, garbage, 10.2.0.1"], "10.0.0.5"),
            ("10.0.0.5", &[], &["fe80::1%eth0"], "10.0.0.5"),
            ("10.0.0.5", &["for=unknown"], &[], "10.0.0.5"),
            ("10.0.0.5", &["for=_hidden"], &[], "10.0.0.5"),
            ("10.0.0.5", &["for=\"198.51.100.1"], &[], "10.0.0.5"),
            ("10.0.0.5", &["for=198.51.100.1;for=198.51.100.2"], &[], "10.0.0.5"),
            ("10.0.0.5", &["proto=https"], &["198.51.100.2"], "10.0.0.5"),
            ("10.0.0.5", &["for"], &[], "10.0.0.5"),
            ("10.0.0.5", &["for=\"\\"], &[], "10.0.0.5"),
            ("10.0.0.5", &["\u{fffd}\u{fffd}"], &[], "10.0.0.5"),
            ("10.0.0.5", &[], &["198.51.100.2\u{fffd}"], "10.0.0.5"),
            // Empty list elements are skipped; an empty header says nothing.
            ("10.0.0.5", &[], &[" , 198.51.100.2 ,"], "198.51.100.2"),
            ("10.0.0.5", &[], &[""], "10.0.0.5"),
            ("10.0.0.5", &[", ,"], &[], "10.0.0.5"),
        ];
        for (peer, forwarded, x_forwarded_for, caller) in table {
            assert_eq!(
                client_address(ip(peer), &trusted(), forwarded, x_forwarded_for),
                ip(caller),
                "peer {peer}, Forwarded {forwarded:?}, X-Forwarded-For {x_forwarded_for:?}"
            );
        }
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        let caller = client_address(ip("127.0.0.1"), &TrustedProxies::default(), &["for=198.51.100.1"], &[]);
        assert_eq!(caller, ip("127.0.0.1"));
    }

    #[test]
    fn headers_are_read_from_a_header_map_in_order() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "198.51.100.66".parse().expect("value"));
        headers.append("x-forwarded-for", "198.51.100.2, 10.1.0.1".parse().expect("value"));
        assert_eq!(trusted().client(ip("10.0.0.5"), &headers), ip("198.51.100.2"));
        assert_eq!(trusted().client(ip("192.0.2.1"), &headers), ip("192.0.2.1"), "untrusted peer");
        let not_ascii = axum::http::HeaderValue::from_bytes(b"198.51.100.2\xff").expect("obs-text is allowed");
        headers.insert("forwarded", not_ascii);
        assert_eq!(trusted().client(ip("10.0.0.5"), &headers), ip("10.0.0.5"), "unreadable: the peer");
    }

    #[test]
    fn fuzz_entry_point_holds_on_odd_input() {
        for input in [&b""[..], b"for=\"", b"\n,,,", b"for=[::1]:x\n[::1", b"\xff\xfe\n\xff", b"\"\\"] {
            fuzz_client_address(input);
        }
    }
}
