//! `ivs-relay`: the deployed relay. Flags (and their env fallbacks) → settings → serve until
//! SIGTERM, then end every session cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ivs_relay::config::{Exposure, HttpSecurity, RelayConfig, StreamingArgs};
use ivs_relay::destination::Secret;
use ivs_relay::protection::ProtectionSettings;
use ivs_relay::server;

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

/// WHIP (WebRTC) in, RTMP/RTMPS out: publish from a browser to Amazon IVS or any RTMP ingest.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// HTTP(S) address for WHIP, the web app, /healthz and /metrics. An unprivileged port, so
    /// the relay needs no capability to bind it.
    #[arg(long, env = "IVS_RELAY_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,

    /// Serve plain HTTP instead of HTTPS (behind a TLS-terminating proxy, or on localhost).
    #[arg(long, env = "IVS_RELAY_HTTP", conflicts_with_all = ["tls_cert", "tls_key", "tls_cert_pem"])]
    http: bool,

    /// TLS certificate chain (PEM file); without it a self-signed certificate is made at start.
    #[arg(long, env = "IVS_RELAY_TLS_CERT", requires = "tls_key", conflicts_with = "tls_cert_pem")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM file).
    #[arg(long, env = "IVS_RELAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// TLS certificate chain as PEM text (how a deployed task gets the one `ivsctl deploy` made).
    #[arg(long, env = "IVS_RELAY_TLS_CERT_PEM", requires = "tls_key_pem", hide_env_values = true)]
    tls_cert_pem: Option<String>,

    /// TLS private key as PEM text.
    #[arg(long, env = "IVS_RELAY_TLS_KEY_PEM", requires = "tls_cert_pem", hide_env_values = true, value_parser = parse_secret)]
    tls_key_pem: Option<Secret>,

    /// After SIGTERM, how long live sessions may go on before they are ended (the task's stop
    /// timeout, less time to end them cleanly); new sessions are refused from the signal on.
    #[arg(long, env = "IVS_RELAY_DRAIN_SECONDS", default_value_t = 110)]
    drain_seconds: u64,

    /// ECS agent endpoint, set by ECS in every task: while sessions are live the relay holds
    /// task scale-in protection through it.
    #[arg(long, env = "ECS_AGENT_URI")]
    ecs_agent_uri: Option<String>,

    /// How long each grant of task protection lasts unless renewed (minutes).
    #[arg(long, env = "IVS_RELAY_TASK_PROTECTION_MINUTES", default_value_t = 10)]
    task_protection_minutes: u32,

    /// How often task protection is renewed while sessions are live (seconds).
    #[arg(long, env = "IVS_RELAY_TASK_PROTECTION_RENEW_SECONDS", default_value_t = 240)]
    task_protection_renew_seconds: u64,

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
    match tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(local)).await {
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
    let http = match (cli.http, cli.tls_cert, cli.tls_key, cli.tls_cert_pem, cli.tls_key_pem) {
        (true, ..) => HttpSecurity::Plain,
        (false, Some(cert), Some(key), ..) => HttpSecurity::Files { cert, key },
        (false, .., Some(cert), Some(key)) => HttpSecurity::Pem { cert, key },
        _ => HttpSecurity::SelfSigned,
    };
    let mut config = RelayConfig::new(cli.listen, http, cli.streaming, Exposure::Internet)?;
    config.task_protection = cli
        .ecs_agent_uri
        .map(|uri| ProtectionSettings::new(&uri, cli.task_protection_minutes, Duration::from_secs(cli.task_protection_renew_seconds)))
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("--task-protection-minutes / --task-protection-renew-seconds")?;
    let running = server::start(config).await?;
    running.serve_until(server::shutdown_signal(), Duration::from_secs(cli.drain_seconds)).await
}
