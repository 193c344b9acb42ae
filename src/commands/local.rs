//! `ivsctl local`: the relay in-process on this machine, recording to ./recordings by default.

use ivs_relay::config::{Exposure, HttpSecurity, RelayConfig};
use ivs_relay::destination::Secret;
use ivs_relay::server;

use std::net::SocketAddr;

use ivs_relay::config::StreamingArgs;

/// Where `ivsctl local` records when no destination is given.
pub const DEFAULT_DESTINATION: &str = "file://./recordings/{stream}-{time}.flv";

/// Serves the web app and WHIP on `listen` (HTTPS with a self-signed certificate if `https`).
pub async fn run(listen: SocketAddr, https: bool, mut streaming: StreamingArgs) -> anyhow::Result<()> {
    if streaming.destinations.is_empty() {
        streaming.destinations.push(Secret::new(DEFAULT_DESTINATION));
    }
    let shown: Vec<String> = streaming
        .destinations
        .iter()
        .map(|d| ivs_relay::destination::Destination::parse_url(d.expose()).map(|d| d.to_string()).unwrap_or_default())
        .collect();
    let http = if https { HttpSecurity::SelfSigned } else { HttpSecurity::Plain };
    let config = RelayConfig::new(listen, http, streaming, Exposure::Local)?;
    let token_required = config.token.is_some();
    let running = server::start(config).await?;
    let scheme = if https { "https" } else { "http" };
    let base = format!("{scheme}://{}", running.http_addr);
    println!("ivsctl local: relay running");
    println!("  web app:        {base}/");
    println!("  WHIP endpoint:  {base}/whip/{{stream}}{}", if token_required { "  (Authorization: Bearer <token>)" } else { "" });
    for destination in &shown {
        println!("  destination:    {destination}");
    }
    println!("Press Ctrl-C to stop.");
    running.serve_until(server::shutdown_signal(), std::time::Duration::ZERO).await?;
    println!("ivsctl local: stopped");
    Ok(())
}
