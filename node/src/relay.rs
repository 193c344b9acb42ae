//! The relay's shared state: its settings, the media thread, the open sessions, the stream names
//! they hold and the metrics. A stream name is held by a `Reservation` from the POST until its
//! session has fully ended; dropping the reservation, on whatever path, frees the name.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;

use crate::config::RelayConfig;
use crate::destination::Destination;
use crate::guard::PostRateLimit;
use crate::metrics::Metrics;
use crate::protection::ProtectionStatus;
use crate::session::{Session, SessionError, SessionParams};
use crate::status::{Origin, StatusReport};
use crate::transcoder::AudioPool;
use crate::transport::Transport;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("session limit reached")]
    Full,
    #[error("stream already live")]
    Busy,
    #[error("shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Session(#[from] SessionError),
}

pub struct Relay {
    pub config: RelayConfig,
    pub metrics: Arc<Metrics>,
    pub(crate) post_rate: PostRateLimit,
    /// The web app's protections (its content security policy first), made once.
    pub(crate) page_headers: axum::http::HeaderMap,
    transport: Transport,
    audio: AudioPool,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Streams with a session being set up or live: one publisher per stream.
    streams: Mutex<HashSet<String>>,
    /// How many sessions are open, for whoever must follow it (task protection, draining).
    open: watch::Sender<usize>,
    pub protection: Arc<ProtectionStatus>,
    accepting: AtomicBool,
}

/// A stream name held for one session; dropped, it frees the name.
pub struct Reservation {
    relay: Weak<Relay>,
    stream: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(relay) = self.relay.upgrade() {
            relay.streams().remove(&self.stream);
        }
    }
}

impl Relay {
    /// The relay of `config`, on the media thread `transport` (which counts into `metrics`);
    /// starts its audio workers.
    pub fn new(config: RelayConfig, transport: Transport, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let audio = AudioPool::start(config.audio_threads.get(), metrics.audio_transcoders.clone())?;
        Ok(Self {
            post_rate: PostRateLimit::per_minute(config.http_limits.posts_per_minute),
            page_headers: page_headers(config.playback_url.as_deref()),
            config,
            metrics,
            transport,
            audio,
            sessions: Mutex::default(),
            streams: Mutex::default(),
            open: watch::Sender::new(0),
            protection: Arc::default(),
            accepting: AtomicBool::new(true),
        })
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn streams(&self) -> MutexGuard<'_, HashSet<String>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// Follows the number of open sessions.
    pub fn watch_sessions(&self) -> watch::Receiver<usize> {
        self.open.subscribe()
    }

    /// Stream names held, by live sessions and by those being set up.
    pub fn reservation_count(&self) -> usize {
        self.streams().len()
    }

    /// Whether `stream` has a session being set up or live.
    pub fn reserved(&self, stream: &str) -> bool {
        self.streams().contains(stream)
    }

    pub fn session(&self, stream: &str, id: &str) -> Option<Arc<Session>> {
        self.sessions().get(id).filter(|s| s.stream == stream).cloned()
    }

    pub fn report(&self, stream: &str, id: &str) -> Option<StatusReport> {
        self.session(stream, id).map(|s| s.status.report())
    }

    fn reserve(self: &Arc<Self>, stream: &str) -> Result<Reservation, StartError> {
        if !self.accepting() {
            return Err(StartError::ShuttingDown);
        }
        let mut streams = self.streams();
        if streams.contains(stream) {
            return Err(StartError::Busy);
        }
        if streams.len() >= self.config.max_sessions {
            return Err(StartError::Full);
        }
        streams.insert(stream.to_owned());
        Ok(Reservation { relay: Arc::downgrade(self), stream: stream.to_owned() })
    }

    pub async fn start_session(
        self: &Arc<Self>,
        stream: &str,
        offer: String,
        destinations: Vec<(Destination, Origin)>,
    ) -> Result<(Arc<Session>, String), StartError> {
        let reservation = self.reserve(stream)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let params = SessionParams {
            id: id.clone(),
            stream: stream.to_owned(),
            destinations,
            max_destinations: self.config.max_destinations,
            client_policy: self.config.client_destinations.clone(),
            candidates: self.config.ice_candidates.clone(),
            aac_bitrate: self.config.aac_bitrate,
            tls: self.config.ingest_tls.clone(),
            dns: self.config.dns.clone(),
            metrics: self.metrics.clone(),
        };
        let (relay, ended) = (Arc::downgrade(self), id.clone());
        let register = |session: &Arc<Session>| {
            let mut sessions = self.sessions();
            sessions.insert(id.clone(), session.clone());
            self.open.send_replace(sessions.len());
        };
        let on_end = move || {
            if let Some(relay) = relay.upgrade() {
                let mut sessions = relay.sessions();
                sessions.remove(&ended);
                relay.open.send_replace(sessions.len());
            }
            drop(reservation); // the name goes last: a new session may start only after this one is gone
        };
        Ok(Session::start(&self.transport, &self.audio, offer, params, register, on_end).await?)
    }

    /// Stops taking sessions (`/healthz` says draining), lets the open ones go on for up to
    /// `keep_live` or until they end on their own, then ends the rest cleanly (RTMP
    /// deleteStream), waiting at most `grace` for that.
    pub async fn drain(&self, keep_live: Duration, grace: Duration) {
        self.accepting.store(false, Ordering::SeqCst);
        let mut open = self.watch_sessions();
        if !keep_live.is_zero() && *open.borrow() > 0 {
            tracing::info!(sessions = *open.borrow(), "draining: live sessions go on for up to {keep_live:?}");
            if tokio::time::timeout(keep_live, open.wait_for(|n| *n == 0)).await.is_ok() {
                return;
            }
        }
        let sessions: Vec<Arc<Session>> = self.sessions().values().cloned().collect();
        for session in &sessions {
            session.stop(crate::status::EndReason::ShuttingDown);
        }
        let all = futures_util::future::join_all(sessions.iter().map(|s| s.finished()));
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("some sessions did not end within {grace:?}");
        }
    }
}

fn page_headers(playback_url: Option<&str>) -> axum::http::HeaderMap {
    use axum::http::{HeaderName, HeaderValue};
    ivs_web::page_headers(playback_url)
        .into_iter()
        .filter_map(|(name, value)| Some((HeaderName::from_static(name), HeaderValue::try_from(value).ok()?)))
        .collect()
}
