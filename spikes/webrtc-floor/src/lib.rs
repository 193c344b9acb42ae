//! The WHIP surface both floors share: `POST /whip/{name}` answers an offer, `DELETE` on the
//! Location ends the session, `/healthz`, and a `/metrics` with the two figures
//! `examples/loadgen` reads from the relay (live sessions, RTP bytes received).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

/// What loadgen scrapes.
#[derive(Debug, Default)]
pub struct Counters {
    /// Sessions whose peer connection is connected.
    pub live: AtomicI64,
    /// RTP payload bytes taken from publishers.
    pub rtp_bytes: AtomicU64,
    /// FLV tags made (with the media core only): that the media work really ran.
    pub tags: AtomicU64,
}

impl Counters {
    pub fn received(&self, payload: usize) {
        self.rtp_bytes.fetch_add(payload as u64, Ordering::Relaxed);
    }
}

/// A WebRTC stack that answers WHIP offers.
pub trait Engine: Send + Sync + 'static {
    /// Answers `offer`; the session is known by the returned id from then on.
    fn answer(&self, offer: String) -> impl Future<Output = anyhow::Result<(String, u64)>> + Send;
    fn close(&self, session: u64);
}

/// Where to listen, read from the flags loadgen gives the relay (`--listen ADDR`,
/// `--udp-port N`); the relay's other flags mean nothing here and are skipped.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: SocketAddr,
    pub udp: SocketAddr,
}

pub fn ports() -> anyhow::Result<Ports> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let http: SocketAddr = value("--listen").unwrap_or_else(|| "127.0.0.1:8080".to_owned()).parse()?;
    let udp_port: u16 = value("--udp-port").unwrap_or_else(|| "5000".to_owned()).parse()?;
    Ok(Ports { http, udp: SocketAddr::new(http.ip(), udp_port) })
}

struct App<E> {
    engine: E,
    counters: Arc<Counters>,
}

pub async fn serve<E: Engine>(http: SocketAddr, engine: E, counters: Arc<Counters>) -> anyhow::Result<()> {
    let app = Arc::new(App { engine, counters });
    let router = Router::new()
        .route("/whip/{name}", post(publish::<E>))
        .route("/whip/{name}/{session}", delete(end::<E>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::<E>))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(http).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

async fn publish<E: Engine>(State(app): State<Arc<App<E>>>, Path(name): Path<String>, offer: String) -> Response {
    match app.engine.answer(offer).await {
        Ok((answer, id)) => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/sdp".to_owned()), (header::LOCATION, format!("/whip/{name}/{id}"))],
            answer,
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e:#}\n")).into_response(),
    }
}

async fn end<E: Engine>(State(app): State<Arc<App<E>>>, Path((_, session)): Path<(String, u64)>) -> StatusCode {
    app.engine.close(session);
    StatusCode::OK
}

async fn metrics<E: Engine>(State(app): State<Arc<App<E>>>) -> String {
    format!(
        "ivs_relay_sessions {}\nivs_relay_rtp_received_bytes_total {}\nfloor_flv_tags_total {}\n",
        app.counters.live.load(Ordering::Relaxed),
        app.counters.rtp_bytes.load(Ordering::Relaxed),
        app.counters.tags.load(Ordering::Relaxed)
    )
}
