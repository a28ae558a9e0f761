//! The egress guard: which addresses tugboat may connect to, for outgoing webhooks and for Git.
//!
//! Checked on the addresses a host name resolves to (not on the name), so a public name that
//! resolves to `127.0.0.1` or the cloud metadata address is refused too. One table of special
//! addresses ([`classify`]) serves both callers; they differ only in whether private ranges are
//! refused (outgoing webhooks: yes; Git: no by default, for self-hosted Git servers) and in
//! their allow-lists (`--egress-allow CIDR`, `--git-egress-allow CIDR`), which re-admit ranges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    Loopback,
    LinkLocal,
    /// A cloud platform's metadata or host endpoint outside the link-local ranges.
    Metadata,
    Private,
    Unspecified,
    Other,
}

impl Blocked {
    pub fn describe(self) -> &'static str {
        match self {
            Blocked::Loopback => "loopback",
            Blocked::LinkLocal => "link-local (cloud metadata)",
            Blocked::Metadata => "a cloud metadata endpoint",
            Blocked::Private => "private",
            Blocked::Unspecified => "unspecified",
            Blocked::Other => "reserved",
        }
    }
}

/// An egress policy: the built-in deny rules, whether private ranges are among them, and the
/// operator's allow-list. `Default` refuses every special address, private ones included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    pub allow: Vec<IpNet>,
    /// Private ranges (RFC 1918, carrier-grade NAT, IPv6 unique local) are admitted.
    pub allow_private: bool,
}

impl EgressPolicy {
    /// Every special address refused unless in `allow`: outgoing webhooks call the internet.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow, allow_private: false }
    }

    /// Private ranges admitted too, unless `deny_private`: Git servers are often self-hosted
    /// on an internal network, while loopback and link-local stay refused.
    pub fn for_git(allow: Vec<IpNet>, deny_private: bool) -> Self {
        Self { allow, allow_private: !deny_private }
    }

    /// `Err` with the reason when `address` may not be called.
    pub fn check(&self, address: IpAddr) -> Result<(), Blocked> {
        let address = canonical(address);
        if self.allow.iter().any(|net| net.contains(&address)) {
            return Ok(());
        }
        match classify(address) {
            Some(Blocked::Private) if self.allow_private => Ok(()),
            Some(blocked) => Err(blocked),
            None => Ok(()),
        }
    }
}

/// Metadata and host endpoints of cloud platforms that lie outside the link-local ranges, so
/// that admitting private ranges (Git's default) cannot admit them: Alibaba Cloud's metadata
/// service (in the carrier-grade NAT range), Azure's WireServer (a public address) and the IPv6
/// endpoint of AWS's instance metadata (a unique local address).
const METADATA_V4: &[Ipv4Addr] = &[Ipv4Addr::new(100, 100, 100, 200), Ipv4Addr::new(168, 63, 129, 16)];
const METADATA_V6: &[Ipv6Addr] = &[Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

/// IPv4-mapped and -compatible IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The deny rule an address falls under, if any.
pub fn classify(address: IpAddr) -> Option<Blocked> {
    match canonical(address) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Blocked> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some(Blocked::Loopback)
    } else if METADATA_V4.contains(&ip) {
        Some(Blocked::Metadata)
    } else if ip.is_link_local() {
        Some(Blocked::LinkLocal)
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // RFC 1918 and the carrier-grade NAT range 100.64.0.0/10.
        Some(Blocked::Private)
    } else if ip.is_unspecified() || a == 0 {
        Some(Blocked::Unspecified)
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some(Blocked::Other)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<Blocked> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some(Blocked::Loopback)
    } else if ip.is_unspecified() {
        Some(Blocked::Unspecified)
    } else if METADATA_V6.contains(&ip) {
        Some(Blocked::Metadata)
    } else if first & 0xffc0 == 0xfe80 {
        Some(Blocked::LinkLocal)
    } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        // Unique local addresses (fc00::/7) and the deprecated site-local fec0::/10.
        Some(Blocked::Private)
    } else if ip.is_multicast() {
        Some(Blocked::Other)
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible (::a.b.c.d) and NAT64 forms: judge the IPv4 address inside.
        classify_v4(v4)
    } else if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., c, d] = ip.segments();
        classify_v4(Ipv4Addr::new((c >> 8) as u8, c as u8, (d >> 8) as u8, d as u8))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, Option<Blocked>)] = &[
            ("127.0.0.1", Some(Blocked::Loopback)),
            ("127.8.9.10", Some(Blocked::Loopback)),
            ("169.254.169.254", Some(Blocked::LinkLocal)),
            ("10.1.2.3", Some(Blocked::Private)),
            ("172.16.0.1", Some(Blocked::Private)),
            ("172.31.255.255", Some(Blocked::Private)),
            ("192.168.1.1", Some(Blocked::Private)),
            ("100.64.0.1", Some(Blocked::Private)),
            ("0.0.0.0", Some(Blocked::Unspecified)),
            ("0.1.2.3", Some(Blocked::Unspecified)),
            ("255.255.255.255", Some(Blocked::Other)),
            ("224.0.0.1", Some(Blocked::Other)),
            ("100.100.100.200", Some(Blocked::Metadata)),
            ("168.63.129.16", Some(Blocked::Metadata)),
            ("fd00:ec2::254", Some(Blocked::Metadata)),
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("::1", Some(Blocked::Loopback)),
            ("::", Some(Blocked::Unspecified)),
            ("fe80::1", Some(Blocked::LinkLocal)),
            ("fd00::1", Some(Blocked::Private)),
            ("fc12::1", Some(Blocked::Private)),
            ("::ffff:127.0.0.1", Some(Blocked::Loopback)),
            ("::ffff:169.254.169.254", Some(Blocked::LinkLocal)),
            ("::ffff:10.0.0.1", Some(Blocked::Private)),
            ("64:ff9b::a9fe:a9fe", Some(Blocked::LinkLocal)),
            ("ff02::1", Some(Blocked::Other)),
            ("2001:4860:4860::8888", None),
            ("::ffff:8.8.8.8", None),
        ];
        let policy = EgressPolicy::default();
        for (text, expected) in cases {
            let ip: IpAddr = text.parse().expect("ip");
            assert_eq!(classify(ip), *expected, "{text}");
            assert_eq!(policy.check(ip).err(), *expected, "{text}");
        }
    }

    #[test]
    fn the_allow_list_readmits_ranges_also_in_mapped_form() {
        let policy = EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr"), "fd00::/8".parse().expect("cidr")]);
        assert_eq!(policy.check("127.0.0.1".parse().expect("ip")), Ok(()));
        assert_eq!(policy.check("::ffff:127.0.0.1".parse().expect("ip")), Ok(()));
        assert_eq!(policy.check("fd00::5".parse().expect("ip")), Ok(()));
        assert_eq!(policy.check("169.254.169.254".parse().expect("ip")), Err(Blocked::LinkLocal));
        assert_eq!(policy.check("::1".parse().expect("ip")), Err(Blocked::Loopback));
    }

    #[test]
    fn git_admits_private_ranges_unless_told_not_to() {
        let ip = |text: &str| -> IpAddr { text.parse().expect("ip") };
        let cases: &[(&str, Option<Blocked>, Option<Blocked>)] = &[
            // address, default Git policy, with --git-egress-deny-private
            ("10.96.0.10", None, Some(Blocked::Private)),
            ("172.16.5.4", None, Some(Blocked::Private)),
            ("192.168.1.20", None, Some(Blocked::Private)),
            ("100.64.0.1", None, Some(Blocked::Private)),
            ("fd12::1", None, Some(Blocked::Private)),
            ("::ffff:10.0.0.1", None, Some(Blocked::Private)),
            ("127.0.0.1", Some(Blocked::Loopback), Some(Blocked::Loopback)),
            ("::1", Some(Blocked::Loopback), Some(Blocked::Loopback)),
            ("169.254.169.254", Some(Blocked::LinkLocal), Some(Blocked::LinkLocal)),
            ("fe80::1", Some(Blocked::LinkLocal), Some(Blocked::LinkLocal)),
            ("fd00:ec2::254", Some(Blocked::Metadata), Some(Blocked::Metadata)),
            ("fd00:ec2::253", None, Some(Blocked::Private)),
            ("100.100.100.200", Some(Blocked::Metadata), Some(Blocked::Metadata)),
            ("::ffff:100.100.100.200", Some(Blocked::Metadata), Some(Blocked::Metadata)),
            ("168.63.129.16", Some(Blocked::Metadata), Some(Blocked::Metadata)),
            ("0.0.0.0", Some(Blocked::Unspecified), Some(Blocked::Unspecified)),
            ("::", Some(Blocked::Unspecified), Some(Blocked::Unspecified)),
            ("240.0.0.1", Some(Blocked::Other), Some(Blocked::Other)),
            ("ff02::1", Some(Blocked::Other), Some(Blocked::Other)),
            ("140.82.112.3", None, None),
            ("2606:50c0:8000::153", None, None),
        ];
        let (default, strict) = (EgressPolicy::for_git(Vec::new(), false), EgressPolicy::for_git(Vec::new(), true));
        for (text, by_default, denying_private) in cases {
            assert_eq!(default.check(ip(text)).err(), *by_default, "{text}");
            assert_eq!(strict.check(ip(text)).err(), *denying_private, "{text} with deny-private");
        }
        // The allow-list re-admits a loopback test server or a node-local mirror, nothing else.
        let allowed = EgressPolicy::for_git(vec!["127.0.0.0/8".parse().expect("cidr")], true);
        assert_eq!(allowed.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(allowed.check(ip("169.254.169.254")), Err(Blocked::LinkLocal));
        assert_eq!(allowed.check(ip("10.0.0.1")), Err(Blocked::Private));
    }
}
