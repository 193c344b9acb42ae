//! Command-line flags (with environment fallbacks) and the settings resolved from them. Flags
//! shared by `ivs-relay` and `ivsctl local` live in `StreamingArgs`; each binary adds its own
//! listener defaults and turns everything into a `RelayConfig`.
//!
//! Secrets (the token, destination URLs with their stream keys) are `Secret` from the moment
//! clap parses them, so no `Debug` of any config type can print them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ipnet::IpNet;

use crate::address::{AddressPolicy, Restrictions};
use crate::destination::{Destination, Secret};
use crate::dns::{Dns, NameServer};
use crate::protection::ProtectionSettings;

/// A secret flag value: an empty one (say `IVS_RELAY_TOKEN=`) is a mistake, never "no token".
fn non_empty_secret(value: &str) -> Result<Secret, String> {
    if value.trim().is_empty() {
        return Err("is set but empty: give a value, or leave the flag and its variable unset".to_owned());
    }
    Ok(Secret::new(value.trim()))
}

/// Flags of the streaming path, the same for the deployed relay and `ivsctl local`.
#[derive(Debug, Clone, Args)]
pub struct StreamingArgs {
    /// Bearer token WHIP clients must send (`Authorization: Bearer …`).
    #[arg(long, env = "IVS_RELAY_TOKEN", hide_env_values = true, value_parser = non_empty_secret)]
    pub token: Option<Secret>,

    /// Where every session publishes (repeatable: each gets the stream): rtmp://, rtmps:// or
    /// file:// URL; `{stream}` and `{time}` are filled in. From the environment:
    /// IVS_RELAY_DESTINATION, then IVS_RELAY_DESTINATION_2, _3, … (one secret each).
    #[arg(long = "destination", env = "IVS_RELAY_DESTINATION", hide_env_values = true, value_parser = non_empty_secret)]
    pub destinations: Vec<Secret>,

    /// Most destinations one session may publish to (the relay's own and the client's together);
    /// more is refused with 400.
    #[arg(long, env = "IVS_RELAY_MAX_DESTINATIONS", default_value_t = 5)]
    pub max_destinations: usize,

    /// Let clients add their own rtmp(s):// destinations: `X-RTMP-Destination` header lines on
    /// the WHIP POST, or a POST to the session's `/destinations` while live.
    #[arg(long, env = "IVS_RELAY_ALLOW_CLIENT_DESTINATION")]
    pub allow_client_destination: bool,

    /// Let client-chosen destinations (and the offer's ICE candidates) be loopback, private or
    /// link-local addresses.
    #[arg(long, env = "IVS_RELAY_ALLOW_PRIVATE_DESTINATIONS")]
    pub allow_private_destinations: bool,

    /// Ports a client-chosen destination may use.
    #[arg(long = "allowed-destination-port", env = "IVS_RELAY_ALLOWED_DESTINATION_PORTS", value_delimiter = ',', default_values_t = [1935, 443, 80])]
    pub allowed_destination_ports: Vec<u16>,

    /// Network a client-chosen destination or ICE candidate may never be in (repeatable), e.g.
    /// the VPC's own CIDR; refused even with --allow-private-destinations.
    #[arg(long = "deny-cidr", env = "IVS_RELAY_DENY_CIDRS", value_delimiter = ',')]
    pub deny_cidrs: Vec<IpNet>,

    /// Extra CA certificates (PEM) trusted for rtmps:// ingests, besides the bundled web PKI roots.
    #[arg(long, env = "IVS_RELAY_INGEST_CA")]
    pub ingest_ca: Option<PathBuf>,

    /// DNS server(s) for ingest and STUN host names, as IP or IP:PORT (default: /etc/resolv.conf).
    #[arg(long = "nameserver", env = "IVS_RELAY_NAMESERVER", value_delimiter = ',')]
    pub nameservers: Vec<NameServer>,

    /// The one UDP port all WebRTC media uses.
    #[arg(long, env = "IVS_RELAY_UDP_PORT", default_value_t = 50000)]
    pub udp_port: u16,

    /// Public address to advertise in ICE candidates (1:1 NAT, e.g. a Fargate task's public IP).
    #[arg(long, env = "IVS_RELAY_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,

    /// STUN servers (host:port, repeatable or comma-separated) to discover the public address
    /// with, when --public-ip is not given: each is tried in turn until one answers.
    #[arg(long, env = "IVS_RELAY_STUN", value_delimiter = ',')]
    pub stun: Vec<String>,

    /// ICE server URL offered to clients in WHIP `Link` headers (repeatable), e.g. stun:stun.example.net:3478.
    #[arg(long = "ice-server", env = "IVS_RELAY_ICE_SERVERS", value_delimiter = ',')]
    pub ice_servers: Vec<String>,

    /// Most sessions at once; more are refused with 503.
    #[arg(long, env = "IVS_RELAY_MAX_SESSIONS", default_value_t = 100)]
    pub max_sessions: usize,

    /// AAC bit rate (bits/s) of stereo audio; mono audio (what browsers send) gets half.
    #[arg(long, env = "IVS_RELAY_AAC_BITRATE", default_value_t = 128_000)]
    pub aac_bitrate: u32,

    /// Threads that transcode every session's Opus to AAC (default: one per core the relay may use).
    #[arg(long, env = "IVS_RELAY_AUDIO_THREADS")]
    pub audio_threads: Option<std::num::NonZeroUsize>,

    /// Receive moderation, in microseconds: while datagrams keep coming, the media thread wakes at
    /// most once per this long and takes all that arrived meanwhile (fewer context switches, at up
    /// to this much added latency, which the latency metrics count); 0 wakes it per datagram.
    #[arg(long, env = "IVS_RELAY_RX_COALESCE_US", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=MAX_RX_COALESCE_US))]
    pub rx_coalesce_us: u64,

    /// Playback URL (HLS) of the default destination, shown by the web app's player.
    #[arg(long, env = "IVS_RELAY_PLAYBACK_URL")]
    pub playback_url: Option<String>,

    /// Most HTTP connections open at once; more are closed on accept.
    #[arg(long, env = "IVS_RELAY_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// WHIP POSTs one client address may make per minute (with a burst of a third of it).
    #[arg(long, env = "IVS_RELAY_POSTS_PER_MINUTE", default_value_t = 60)]
    pub posts_per_minute: u32,
}

/// Longest receive moderation window: a datagram waits at most this long, and video's added
/// latency target is 5 ms at p99 (ARCHITECTURE.md).
const MAX_RX_COALESCE_US: u64 = 5000;

/// Where the relay runs, which decides what it trusts on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// `ivsctl local`: one machine or a LAN; loopback and private ICE candidates are normal.
    Local,
    /// The deployed relay on the internet.
    Internet,
}

/// HTTP limits: what a connection may hold and for how long. Headers and body each get half
/// of 10 s, so a whole request arrives within 10 s or the connection is closed.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    /// From accepting a connection (or the end of its previous request) to a request's last header.
    pub header_timeout: Duration,
    /// From a POST's last header to the end of its body.
    pub body_timeout: Duration,
    pub posts_per_minute: u32,
}

/// How the HTTP side listens.
#[derive(Debug, Clone)]
pub enum HttpSecurity {
    Plain,
    /// PEM certificate chain and key files.
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// PEM certificate chain and key themselves (a deployed task gets them as variables, the
    /// key from SSM SecureString).
    Pem {
        cert: String,
        key: Secret,
    },
    /// A self-signed certificate made at start, for the given names.
    SelfSigned,
}

/// Everything the relay runs with, checked.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub http: HttpSecurity,
    pub http_limits: HttpLimits,
    pub token: Option<Secret>,
    /// Destination templates (may hold `{stream}`/`{time}`); checked at start.
    pub destinations: Vec<Secret>,
    pub max_destinations: usize,
    pub allow_client_destination: bool,
    /// What a client-chosen destination may resolve to.
    pub client_destinations: AddressPolicy,
    pub allowed_destination_ports: Vec<u16>,
    /// Which of an offer's ICE candidates the relay may send checks to.
    pub ice_candidates: AddressPolicy,
    pub ingest_tls: Arc<rustls::ClientConfig>,
    pub dns: Dns,
    pub udp_port: u16,
    pub public_ip: Option<IpAddr>,
    pub stun: Vec<String>,
    pub ice_servers: Vec<String>,
    pub max_sessions: usize,
    pub aac_bitrate: u32,
    pub audio_threads: std::num::NonZeroUsize,
    /// The media thread's receive moderation window (`transport::moderation`).
    pub receive_window: Duration,
    pub playback_url: Option<String>,
    /// ECS task scale-in protection while sessions are live (deployed tasks only).
    pub task_protection: Option<ProtectionSettings>,
}

impl RelayConfig {
    pub fn new(listen: SocketAddr, http: HttpSecurity, args: StreamingArgs, exposure: Exposure) -> anyhow::Result<Self> {
        let mut args = args;
        args.destinations.extend(numbered_destinations(|name| std::env::var(name).ok()).map_err(anyhow::Error::msg)?);
        for (n, template) in args.destinations.iter().enumerate() {
            // The error says what is wrong, never the URL: it holds the stream key.
            Destination::parse(template.expose(), "check", jiff::Timestamp::now())
                .map_err(|e| anyhow::anyhow!("--destination #{} is not usable: {e}", n + 1))?;
        }
        if args.destinations.is_empty() && !args.allow_client_destination {
            anyhow::bail!(
                "no destination: give --destination (or IVS_RELAY_DESTINATION), or allow clients to choose with --allow-client-destination"
            );
        }
        if args.max_destinations == 0 || args.destinations.len() > args.max_destinations {
            anyhow::bail!("{} destinations given but --max-destinations is {}", args.destinations.len(), args.max_destinations);
        }
        if args.aac_bitrate < 32_000 || args.aac_bitrate > 320_000 {
            anyhow::bail!("--aac-bitrate {} is outside 32000..=320000", args.aac_bitrate);
        }
        if args.max_connections == 0 || args.posts_per_minute == 0 {
            anyhow::bail!("--max-connections and --posts-per-minute must be at least 1");
        }
        let restricted = AddressPolicy::Restricted(Arc::new(Restrictions {
            allow_private: args.allow_private_destinations,
            deny: args.deny_cidrs.clone(),
        }));
        let ice_candidates = match exposure {
            Exposure::Local => AddressPolicy::Any,
            Exposure::Internet => restricted.clone(),
        };
        Ok(Self {
            listen,
            http,
            http_limits: HttpLimits {
                max_connections: args.max_connections,
                header_timeout: Duration::from_secs(5),
                body_timeout: Duration::from_secs(5),
                posts_per_minute: args.posts_per_minute,
            },
            token: args.token,
            destinations: args.destinations,
            max_destinations: args.max_destinations,
            allow_client_destination: args.allow_client_destination,
            client_destinations: restricted,
            allowed_destination_ports: args.allowed_destination_ports,
            ice_candidates,
            ingest_tls: ingest_tls_config(args.ingest_ca.as_deref())?,
            dns: Dns::new(&args.nameservers),
            udp_port: args.udp_port,
            public_ip: args.public_ip,
            stun: args.stun,
            ice_servers: args.ice_servers,
            max_sessions: args.max_sessions,
            aac_bitrate: args.aac_bitrate,
            // Cgroup quotas count: a Fargate task of 0.25 vCPU gets one.
            audio_threads: args
                .audio_threads
                .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN)),
            receive_window: Duration::from_micros(args.rx_coalesce_us),
            playback_url: args.playback_url,
            task_protection: None,
        })
    }
}

/// `IVS_RELAY_DESTINATION_2`, `_3`, … up to the first one unset: how a deployed task gets
/// several destinations, each its own ECS secret (one SSM parameter each).
fn numbered_destinations(var: impl Fn(&str) -> Option<String>) -> Result<Vec<Secret>, String> {
    (2..)
        .map_while(|n| var(&format!("IVS_RELAY_DESTINATION_{n}")).map(|value| (n, value)))
        .map(|(n, value)| non_empty_secret(&value).map_err(|e| format!("IVS_RELAY_DESTINATION_{n} {e}")))
        .collect()
}

/// TLS for rtmps:// ingests: the bundled web PKI roots (no system store needed), plus `extra_ca`.
fn ingest_tls_config(extra_ca: Option<&std::path::Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = extra_ca {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read --ingest-ca {}", path.display()))?;
        for cert in certs {
            let cert = cert.with_context(|| format!("--ingest-ca {} holds a bad certificate", path.display()))?;
            roots.add(cert).with_context(|| format!("--ingest-ca {}: certificate not usable as a root", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        streaming: StreamingArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ivs-relay").chain(args.iter().copied()))
    }

    fn config(args: &[&str]) -> anyhow::Result<RelayConfig> {
        let cli = parse(args)?;
        RelayConfig::new("127.0.0.1:0".parse()?, HttpSecurity::Plain, cli.streaming, Exposure::Internet)
    }

    #[test]
    fn debug_of_the_flags_and_the_config_shows_no_secret() {
        let args = ["--token", "tok-s3cret", "--destination", "rtmps://ingest.example:443/app/sk-s3cret"];
        let cli = parse(&args).expect("parses");
        assert!(!format!("{cli:?}").contains("s3cret"), "{cli:?}");
        let config = config(&args).expect("valid");
        assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
        assert_eq!(config.token.as_ref().map(Secret::expose), Some("tok-s3cret"));
    }

    #[test]
    fn an_empty_token_or_destination_is_an_error_not_auth_off() {
        for args in [&["--token", ""][..], &["--token", "  "], &["--destination", ""]] {
            let error = parse(args).expect_err("refused").to_string();
            assert!(error.contains("empty"), "{error}");
        }
    }

    #[test]
    fn an_unusable_destination_is_reported_without_its_url() {
        let error = config(&["--destination", "rtmp://ingest.example/sk-s3cret"]).expect_err("no app").to_string();
        assert!(error.contains("--destination #1 is not usable") && !error.contains("s3cret"), "{error}");
    }

    #[test]
    fn destinations_repeat_and_the_numbered_variables_add_to_them() {
        let config = config(&["--destination", "file://a.flv", "--destination", "rtmp://ingest.example/app/k"]).expect("valid");
        assert_eq!(config.destinations.len(), 2);
        let vars = |name: &str| match name {
            "IVS_RELAY_DESTINATION_2" => Some("rtmp://a.example/app/k".to_owned()),
            "IVS_RELAY_DESTINATION_3" => Some("rtmp://b.example/app/k".to_owned()),
            "IVS_RELAY_DESTINATION_5" => Some("rtmp://never.example/app/k".to_owned()),
            _ => None,
        };
        let numbered = numbered_destinations(vars).expect("valid");
        assert_eq!(numbered.iter().map(Secret::expose).collect::<Vec<_>>(), ["rtmp://a.example/app/k", "rtmp://b.example/app/k"]);
        let error = numbered_destinations(|_| Some(String::new())).expect_err("empty").to_string();
        assert!(error.contains("IVS_RELAY_DESTINATION_2"), "{error}");
    }

    #[test]
    fn more_destinations_than_the_limit_is_an_error_at_start() {
        let error = config(&["--destination", "file://a.flv", "--destination", "file://b.flv", "--max-destinations", "1"])
            .expect_err("too many")
            .to_string();
        assert!(error.contains("2 destinations given but --max-destinations is 1"), "{error}");
    }

    #[test]
    fn the_deployed_relay_filters_candidates_and_the_local_one_does_not() {
        let internet = config(&["--destination", "file://x.flv"]).expect("valid");
        assert!(!internet.ice_candidates.permits("192.168.1.2".parse().expect("ip")));
        let cli = parse(&["--destination", "file://x.flv"]).expect("parses");
        let local =
            RelayConfig::new("127.0.0.1:0".parse().expect("addr"), HttpSecurity::Plain, cli.streaming, Exposure::Local).expect("valid");
        assert!(local.ice_candidates.permits("192.168.1.2".parse().expect("ip")));
    }

    #[test]
    fn receive_moderation_is_two_milliseconds_unless_asked_and_never_past_the_latency_target() {
        let default = config(&["--destination", "file://x.flv"]).expect("valid");
        assert_eq!(default.receive_window, Duration::from_millis(2));
        let off = config(&["--destination", "file://x.flv", "--rx-coalesce-us", "0"]).expect("valid");
        assert_eq!(off.receive_window, Duration::ZERO);
        let error = parse(&["--destination", "file://x.flv", "--rx-coalesce-us", "5001"]).expect_err("refused").to_string();
        assert!(error.contains("--rx-coalesce-us") && error.contains("0..=5000"), "{error}");
    }
}
