//! `ivs-relay`: the deployed relay. Flags (and their env fallbacks) → settings → serve until
//! SIGTERM, then end every session cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ivs_relay::config::{Exposure, HttpSecurity, RelayConfig, StreamingArgs};
use ivs_relay::server;

/// WHIP (WebRTC) in, RTMP/RTMPS out: publish from a browser to Amazon IVS or any RTMP ingest.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// HTTP(S) address for WHIP, the web app, /healthz and /metrics.
    #[arg(long, env = "IVS_RELAY_LISTEN", default_value = "0.0.0.0:443")]
    listen: SocketAddr,

    /// Serve plain HTTP instead of HTTPS (behind a TLS-terminating proxy, or on localhost).
    #[arg(long, env = "IVS_RELAY_HTTP", conflicts_with_all = ["tls_cert", "tls_key"])]
    http: bool,

    /// TLS certificate chain (PEM); without it a self-signed certificate is made at start.
    #[arg(long, env = "IVS_RELAY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, env = "IVS_RELAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Check that a relay on this host accepts connections on --listen's port, and exit 0 if so:
    /// the container health check, for images with no shell or curl.
    #[arg(long)]
    health_check: bool,

    #[command(flatten)]
    streaming: StreamingArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    server::init_logging("warn,ivs_relay=info");
    server::install_crypto_provider();
    let cli = Cli::parse();
    if cli.health_check {
        return health_check(cli.listen).await;
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ivs-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn health_check(listen: SocketAddr) -> ExitCode {
    let local = SocketAddr::from(([127, 0, 0, 1], listen.port()));
    match tokio::time::timeout(std::time::Duration::from_secs(3), tokio::net::TcpStream::connect(local)).await {
        Ok(Ok(_)) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("ivs-relay: unhealthy: nothing accepts connections on {local}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("ivs-relay: unhealthy: {local} did not accept a connection within 3 s");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let http = match (cli.http, cli.tls_cert, cli.tls_key) {
        (true, ..) => HttpSecurity::Plain,
        (false, Some(cert), Some(key)) => HttpSecurity::Files { cert, key },
        _ => HttpSecurity::SelfSigned,
    };
    let config = RelayConfig::new(cli.listen, http, cli.streaming, Exposure::Internet)?;
    let running = server::start(config).await?;
    running.serve_until(server::shutdown_signal()).await
}
