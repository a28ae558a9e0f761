//! The SSRF guard: which addresses outgoing webhooks may reach.
//!
//! Checked on the addresses a host name resolves to (not on the name), so a public name that
//! resolves to `127.0.0.1` or the cloud metadata address is refused too. The operator's
//! allow-list (`--egress-allow CIDR`) re-admits chosen ranges, e.g. an in-cluster service range.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    Loopback,
    LinkLocal,
    Private,
    Unspecified,
    Other,
}

impl Blocked {
    pub fn describe(self) -> &'static str {
        match self {
            Blocked::Loopback => "loopback",
            Blocked::LinkLocal => "link-local (cloud metadata)",
            Blocked::Private => "private",
            Blocked::Unspecified => "unspecified",
            Blocked::Other => "reserved",
        }
    }
}

/// The egress policy: the built-in deny rules and the operator's allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    pub allow: Vec<IpNet>,
}

impl EgressPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// `Err` with the reason when `address` may not be called.
    pub fn check(&self, address: IpAddr) -> Result<(), Blocked> {
        let address = canonical(address);
        if self.allow.iter().any(|net| net.contains(&address)) {
            return Ok(());
        }
        match classify(address) {
            Some(blocked) => Err(blocked),
            None => Ok(()),
        }
    }
}

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
}
