//! Host name resolution for ingests and STUN servers, in Rust rather than through the C
//! library: the relay ships as a static binary in an image with nothing else in it, where glibc's
//! resolver (which loads NSS modules at run time) does not work.
//!
//! Name servers come from `--nameserver` when given, else from `/etc/resolv.conf` (which a
//! container runtime mounts in). With neither, IP addresses still work and every host name fails
//! with an error that says how to fix it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DnsError {
    #[error("no name server to ask: {0}; give one with --nameserver (IVS_RELAY_NAMESERVER)")]
    Unconfigured(String),
    #[error("{0}")]
    Lookup(String),
    #[error("no addresses")]
    NoAddresses,
}

/// A name server given on the command line: `IP` or `IP:PORT` (port 53 when left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameServer(pub SocketAddr);

impl std::str::FromStr for NameServer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self(SocketAddr::new(ip, 53)));
        }
        s.parse::<SocketAddr>().map(Self).map_err(|_| format!("{s:?} is not an IP address or IP:PORT"))
    }
}

/// The relay's resolver; cheap to clone.
#[derive(Clone)]
pub struct Dns(Arc<Inner>);

#[allow(clippy::large_enum_variant)] // one per relay, behind an Arc
enum Inner {
    Ready(TokioResolver),
    /// Why there is no name server (e.g. no /etc/resolv.conf in the image).
    Unconfigured(String),
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Inner::Ready(_) => f.write_str("Dns(ready)"),
            Inner::Unconfigured(why) => write!(f, "Dns(unconfigured: {why})"),
        }
    }
}

impl Dns {
    /// Uses `servers` when there are any, else the system's configuration.
    pub fn new(servers: &[NameServer]) -> Self {
        let builder = if servers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(builder) => builder,
                Err(e) => {
                    let why = format!("cannot read /etc/resolv.conf ({e})");
                    tracing::warn!("{why}: only IP addresses will resolve");
                    return Self(Arc::new(Inner::Unconfigured(why)));
                }
            }
        } else {
            let name_servers = servers.iter().map(|s| name_server(s.0)).collect();
            let mut builder =
                TokioResolver::builder_with_config(ResolverConfig::from_name_servers(name_servers), TokioRuntimeProvider::default());
            *builder.options_mut() = ResolverOpts::default();
            builder
        };
        match builder.build() {
            Ok(resolver) => Self(Arc::new(Inner::Ready(resolver))),
            Err(e) => Self(Arc::new(Inner::Unconfigured(format!("resolver setup failed ({e})")))),
        }
    }

    /// The addresses of `host` (a name or an IP literal), each with `port`.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DnsError> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let resolver = match &*self.0 {
            Inner::Ready(resolver) => resolver,
            Inner::Unconfigured(why) => return Err(DnsError::Unconfigured(why.clone())),
        };
        let found = resolver.lookup_ip(host).await.map_err(|e| DnsError::Lookup(e.to_string()))?;
        let addrs: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        if addrs.is_empty() { Err(DnsError::NoAddresses) } else { Ok(addrs) }
    }
}

fn name_server(addr: SocketAddr) -> NameServerConfig {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut c| {
            c.port = addr.port();
            c
        })
        .collect();
    NameServerConfig::new(addr.ip(), true, connections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_servers_parse_with_and_without_port() {
        assert_eq!("10.0.0.2".parse::<NameServer>().map(|n| n.0.port()), Ok(53));
        assert_eq!("127.0.0.1:5353".parse::<NameServer>().map(|n| n.0.port()), Ok(5353));
        assert_eq!("[::1]:5353".parse::<NameServer>().map(|n| n.0.port()), Ok(5353));
        assert!("dns.example".parse::<NameServer>().is_err());
    }

    #[tokio::test]
    async fn ip_literals_need_no_name_server() {
        let dns = Dns(Arc::new(Inner::Unconfigured("test".into())));
        assert_eq!(dns.resolve("192.0.2.7", 1935).await, Ok(vec!["192.0.2.7:1935".parse().unwrap()]));
        assert_eq!(dns.resolve("[::1]", 443).await, Ok(vec!["[::1]:443".parse().unwrap()]));
        let Err(DnsError::Unconfigured(_)) = dns.resolve("ingest.example", 443).await else { panic!("a name must fail") };
    }

    #[tokio::test]
    async fn localhost_resolves_without_asking_anyone() {
        // RFC 6761: hickory answers localhost itself; the name server here does not exist.
        let dns = Dns::new(&["127.0.0.1:9".parse().unwrap()]);
        let addrs = dns.resolve("localhost", 1935).await.expect("localhost");
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
