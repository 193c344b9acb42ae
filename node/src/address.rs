//! Which IP addresses the relay may reach on a client's behalf: a client-chosen RTMP ingest,
//! or an ICE candidate from an offer. Only globally routable unicast qualifies — for IPv6
//! `2000::/3`, with the forms that embed an IPv4 address unwrapped and judged as IPv4 — and
//! never a network the operator denies (`--deny-cidr`, e.g. the VPC's own range).
//!
//! The operator's own destination is not judged here: it may be anything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

/// What a client may make the relay connect to.
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
    /// Loopback, private and other non-global addresses pass too (`--allow-private-destinations`).
    pub allow_private: bool,
    /// Networks refused whatever else holds.
    pub deny: Vec<IpNet>,
}

/// Which addresses a connection may go to.
#[derive(Debug, Clone)]
pub enum AddressPolicy {
    /// The operator's own choice: anything goes.
    Any,
    /// A client's choice: checked on every (re)connect, so that DNS cannot point a later
    /// connection inward.
    Restricted(Arc<Restrictions>),
}

impl AddressPolicy {
    pub fn permits(&self, ip: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::Restricted(r) => !r.deny.iter().any(|net| net.contains(&canonical(ip))) && (r.allow_private || is_global(ip)),
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is globally routable unicast.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => is_global_v4(v4),
            None => is_global_v6(v6),
        },
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0                        // "this network"
        || a == 10                              // private
        || (a == 100 && (64..128).contains(&b)) // shared (carrier-grade NAT)
        || a == 127                             // loopback
        || (a == 169 && b == 254)               // link-local, instance metadata
        || (a == 172 && (16..32).contains(&b))  // private
        || (a == 192 && b == 0 && c == 0)       // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)       // documentation
        || (a == 192 && b == 88 && c == 99)     // 6to4 relay anycast
        || (a == 192 && b == 168)               // private
        || (a == 198 && (18..20).contains(&b))  // benchmarking
        || (a == 198 && b == 51 && c == 100)    // documentation
        || (a == 203 && b == 0 && c == 113)     // documentation
        || a >= 224; // multicast, reserved, broadcast
    !special
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    let global_unicast = (first & 0xe000) == 0x2000;
    let protocol_assignments = first == 0x2001 && second < 0x0200; // 2001::/23: Teredo, benchmarking, ORCHID…
    let documentation = first == 0x2001 && second == 0x0db8;
    global_unicast && !protocol_assignments && !documentation
}

/// The IPv4 address inside an IPv6 address that carries one: IPv4-mapped `::ffff:0:0/96`,
/// IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4 `2002::/16`.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, ..] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(low),
        [0x64, 0xff9b, 1, ..] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(ip: &str) -> bool {
        is_global(ip.parse().expect("ip"))
    }

    #[test]
    fn inward_and_special_addresses_are_not_global() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fec0::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(!global(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_that_embed_an_inward_ipv4_are_judged_as_that_ipv4() {
        for ip in [
            "::ffff:127.0.0.1",  // mapped
            "::127.0.0.1",       // compatible
            "::a9fe:a9fe",       // compatible 169.254.169.254
            "64:ff9b::10.0.0.1", // NAT64
            "64:ff9b:1::a00:1",  // local-use NAT64, 10.0.0.1
            "2002:7f00:1::",     // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
        ] {
            assert!(!global(ip), "{ip}");
        }
        for ip in ["::ffff:52.94.1.1", "64:ff9b::34.1.2.3", "2002:345e:101::1"] {
            assert!(global(ip), "{ip}");
        }
    }

    #[test]
    fn public_unicast_is_global() {
        for ip in ["52.94.1.1", "8.8.8.8", "1.1.1.1", "2600:1f18::1", "2a00:1450::1"] {
            assert!(global(ip), "{ip}");
        }
    }

    #[test]
    fn denied_networks_lose_even_when_private_addresses_are_allowed() {
        let policy = AddressPolicy::Restricted(Arc::new(Restrictions {
            allow_private: true,
            deny: vec!["172.31.0.0/16".parse().expect("cidr"), "52.94.0.0/16".parse().expect("cidr")],
        }));
        assert!(policy.permits("10.0.0.1".parse().expect("ip")));
        assert!(!policy.permits("172.31.4.5".parse().expect("ip")));
        assert!(!policy.permits("52.94.1.1".parse().expect("ip")));
        assert!(!policy.permits("::ffff:52.94.1.1".parse().expect("ip")));
        assert!(AddressPolicy::Any.permits("127.0.0.1".parse().expect("ip")));
    }
}
