//! Runs the relay: binds the WebRTC UDP port and the HTTP(S) listener, serves until the
//! shutdown future resolves, then stops taking sessions and ends each one cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{HttpLimits, HttpSecurity, RelayConfig};
use crate::connections::ConnectionLimit;
use crate::relay::Relay;
use crate::transport::{IceSettings, Transport};

/// How long shutdown waits for sessions to end their RTMP streams.
const DRAIN_GRACE: Duration = Duration::from_secs(8);

/// A relay that is listening.
pub struct Running {
    pub http_addr: SocketAddr,
    pub relay: Arc<Relay>,
    handle: axum_server::Handle<SocketAddr>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Serves until `shutdown` resolves, then drains: no new sessions, the live ones go on for
    /// up to `keep_live` (a deployed task's stop timeout), then end cleanly.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>, keep_live: Duration) -> anyhow::Result<()> {
        let Running { relay, handle, server, .. } = self;
        tokio::select! {
            () = shutdown => {}
            result = server => {
                result.context("HTTP server task failed")?.context("HTTP server failed")?;
                return Ok(());
            }
        }
        tracing::info!(sessions = relay.session_count(), "shutting down: no new sessions");
        relay.drain(keep_live, DRAIN_GRACE).await;
        handle.graceful_shutdown(Some(Duration::from_secs(2)));
        Ok(())
    }
}

/// Binds everything; returns once the relay is listening.
pub async fn start(mut config: RelayConfig) -> anyhow::Result<Running> {
    if config.public_ip.is_none() && !config.stun.is_empty() {
        let ip = crate::stun::discover_public_ip(&config.dns, &config.stun).await.context("--stun")?;
        config.public_ip = Some(ip);
    }
    let loopback_only = config.listen.ip().is_loopback();
    let ice = IceSettings {
        bind: SocketAddr::new(if loopback_only { config.listen.ip() } else { [0, 0, 0, 0].into() }, config.udp_port),
        public_ip: config.public_ip,
        loopback_only,
        receive_window: config.receive_window,
    };
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let transport = Transport::start(&ice, metrics.media.clone())?;
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    listener.set_nonblocking(true)?;
    let http_addr = listener.local_addr()?;
    let security = config.http.clone();
    let limits = config.http_limits.clone();
    let protection = config.task_protection.clone();
    let relay = Arc::new(Relay::new(config, transport, metrics).context("cannot start the audio threads")?);
    if let Some(settings) = protection {
        tokio::spawn(crate::protection::maintain(settings, relay.watch_sessions(), relay.protection.clone()));
    }
    // The client's address is what POSTs are rate-limited by.
    let app = crate::whip::router(relay.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let connections = ConnectionLimit::new(limits.max_connections);

    let tls = match security {
        HttpSecurity::Plain => None,
        HttpSecurity::Files { cert, key } => Some(server_tls(
            &std::fs::read(&cert).with_context(|| format!("cannot read --tls-cert {}", cert.display()))?,
            &std::fs::read(&key).with_context(|| format!("cannot read --tls-key {}", key.display()))?,
        )?),
        HttpSecurity::Pem { cert, key } => Some(server_tls(cert.as_bytes(), key.expose().as_bytes())?),
        HttpSecurity::SelfSigned => {
            let (cert, key) = self_signed(http_addr)?;
            tracing::warn!(
                "serving HTTPS with a self-signed certificate; browsers will ask to accept it (give --tls-cert/--tls-key for a real one)"
            );
            Some(server_tls(cert.as_bytes(), key.as_bytes())?)
        }
    };
    let server = match tls {
        None => {
            let server = with_deadlines(axum_server::from_tcp(listener)?.acceptor(connections), &limits);
            tokio::spawn(server.handle(handle.clone()).serve(app))
        }
        Some(tls) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_config(tls);
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).handshake_timeout(limits.header_timeout).acceptor(connections);
            let server = with_deadlines(axum_server::from_tcp(listener)?.acceptor(acceptor), &limits);
            tokio::spawn(server.handle(handle.clone()).serve(app))
        }
    };
    tracing::info!(http = %http_addr, udp = %ice.bind, public_ip = ?ice.public_ip, "relay listening");
    Ok(Running { http_addr, relay, handle, server })
}

/// HTTP/1.1 only, with the header deadline on every request of a connection; the body's is the
/// guard's. A client that never finishes its headers is closed, not waited for.
fn with_deadlines<A>(
    server: axum_server::Server<std::net::SocketAddr, A>,
    limits: &HttpLimits,
) -> axum_server::Server<std::net::SocketAddr, A> {
    let mut server = server.http1_only().first_request_timeout(limits.header_timeout);
    server.http_builder().http1().header_read_timeout(Some(limits.header_timeout));
    server
}

fn server_tls(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>().context("TLS certificate is not valid PEM")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("TLS key is not valid PEM")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A certificate for this run only, naming localhost and the listen address.
fn self_signed(addr: SocketAddr) -> anyhow::Result<(String, String)> {
    let mut names = vec!["localhost".to_owned(), addr.ip().to_string()];
    names.dedup();
    let cert = rcgen::generate_simple_self_signed(names).context("cannot make a self-signed certificate")?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

/// Resolves on Ctrl-C or SIGTERM (what ECS sends to stop a task).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Makes ring the process-wide rustls provider: with the AWS SDK in the same build, rustls has two
/// providers compiled in and cannot pick one by itself (the `rtc` crates rely on the default).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Logs to stderr, filtered by `RUST_LOG` or else by `default_filter`.
pub fn init_logging(default_filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colour only on a terminal: CloudWatch and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}
