//! Command-line flags (with environment fallbacks) and the settings resolved from them. Flags
//! shared by `ivs-relay` and `ivsctl local` live in `StreamingArgs`; each binary adds its own
//! listener defaults and turns everything into a `RelayConfig`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::destination::{Destination, Secret};
use crate::dns::{Dns, NameServer};

/// Flags of the streaming path, the same for the deployed relay and `ivsctl local`.
#[derive(Debug, Clone, Args)]
pub struct StreamingArgs {
    /// Bearer token WHIP clients must send (`Authorization: Bearer …`).
    #[arg(long, env = "IVS_RELAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Default destination: rtmp://, rtmps:// or file:// URL; `{stream}` and `{time}` are filled in.
    #[arg(long, env = "IVS_RELAY_DESTINATION", hide_env_values = true)]
    pub destination: Option<String>,

    /// Let clients choose their own rtmp(s):// destination with the `X-RTMP-Destination` header.
    #[arg(long, env = "IVS_RELAY_ALLOW_CLIENT_DESTINATION")]
    pub allow_client_destination: bool,

    /// Let client-chosen destinations resolve to loopback, private or link-local addresses.
    #[arg(long, env = "IVS_RELAY_ALLOW_PRIVATE_DESTINATIONS")]
    pub allow_private_destinations: bool,

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

    /// STUN server (host:port) to discover the public address with, when --public-ip is not given.
    #[arg(long, env = "IVS_RELAY_STUN")]
    pub stun: Option<String>,

    /// ICE server URL offered to clients in WHIP `Link` headers (repeatable), e.g. stun:stun.example.net:3478.
    #[arg(long = "ice-server", env = "IVS_RELAY_ICE_SERVERS", value_delimiter = ',')]
    pub ice_servers: Vec<String>,

    /// Most sessions at once; more are refused with 503.
    #[arg(long, env = "IVS_RELAY_MAX_SESSIONS", default_value_t = 100)]
    pub max_sessions: usize,

    /// AAC bit rate (bits/s) of the transcoded audio.
    #[arg(long, env = "IVS_RELAY_AAC_BITRATE", default_value_t = 128_000)]
    pub aac_bitrate: u32,

    /// Playback URL (HLS) of the default destination, shown by the web app's player.
    #[arg(long, env = "IVS_RELAY_PLAYBACK_URL")]
    pub playback_url: Option<String>,
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
    /// A self-signed certificate made at start, for the given names.
    SelfSigned,
}

/// Everything the relay runs with, checked.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub http: HttpSecurity,
    pub token: Option<Secret>,
    /// Destination template (may hold `{stream}`/`{time}`); checked at start.
    pub destination: Option<String>,
    pub allow_client_destination: bool,
    pub allow_private_destinations: bool,
    pub ingest_tls: Arc<rustls::ClientConfig>,
    pub dns: Dns,
    pub udp_port: u16,
    pub public_ip: Option<IpAddr>,
    pub stun: Option<String>,
    pub ice_servers: Vec<String>,
    pub max_sessions: usize,
    pub aac_bitrate: u32,
    pub playback_url: Option<String>,
}

impl RelayConfig {
    pub fn new(listen: SocketAddr, http: HttpSecurity, args: StreamingArgs) -> anyhow::Result<Self> {
        if let Some(template) = &args.destination {
            Destination::parse(template, "check", jiff::Timestamp::now())
                .with_context(|| format!("--destination {template:?} is not usable"))?;
        } else if !args.allow_client_destination {
            anyhow::bail!(
                "no destination: give --destination (or IVS_RELAY_DESTINATION), or allow clients to choose with --allow-client-destination"
            );
        }
        if args.aac_bitrate < 32_000 || args.aac_bitrate > 320_000 {
            anyhow::bail!("--aac-bitrate {} is outside 32000..=320000", args.aac_bitrate);
        }
        Ok(Self {
            listen,
            http,
            token: args.token.filter(|t| !t.is_empty()).map(Secret::new),
            destination: args.destination,
            allow_client_destination: args.allow_client_destination,
            allow_private_destinations: args.allow_private_destinations,
            ingest_tls: ingest_tls_config(args.ingest_ca.as_deref())?,
            dns: Dns::new(&args.nameservers),
            udp_port: args.udp_port,
            public_ip: args.public_ip,
            stun: args.stun,
            ice_servers: args.ice_servers,
            max_sessions: args.max_sessions,
            aac_bitrate: args.aac_bitrate,
            playback_url: args.playback_url,
        })
    }
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
