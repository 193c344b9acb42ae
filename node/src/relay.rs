//! The relay's shared state: its settings, the WebRTC API, the open sessions and the metrics.
//! Sessions are added by WHIP POST and remove themselves when they end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use thiserror::Error;
use webrtc::api::API;

use crate::config::RelayConfig;
use crate::destination::{AddressPolicy, Destination};
use crate::metrics::Metrics;
use crate::session::{Session, SessionError, SessionParams};
use crate::status::StatusReport;

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
    api: API,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Streams with a session being set up or live: one publisher per stream.
    streams: Mutex<HashMap<String, String>>,
    accepting: AtomicBool,
}

impl Relay {
    pub fn new(config: RelayConfig, api: API) -> Self {
        Self {
            config,
            metrics: Arc::new(Metrics::new()),
            api,
            sessions: Mutex::default(),
            streams: Mutex::default(),
            accepting: AtomicBool::new(true),
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    pub fn session(&self, stream: &str, id: &str) -> Option<Arc<Session>> {
        self.sessions().get(id).filter(|s| s.stream == stream).cloned()
    }

    pub fn report(&self, stream: &str, id: &str) -> Option<StatusReport> {
        self.session(stream, id).map(|s| s.status.report())
    }

    pub async fn start_session(
        self: &Arc<Self>,
        stream: &str,
        offer: String,
        destination: Destination,
        policy: AddressPolicy,
    ) -> Result<(Arc<Session>, String), StartError> {
        if !self.accepting() {
            return Err(StartError::ShuttingDown);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        {
            let mut streams = self.streams();
            if streams.contains_key(stream) {
                return Err(StartError::Busy);
            }
            if streams.len() >= self.config.max_sessions {
                return Err(StartError::Full);
            }
            streams.insert(stream.to_owned(), id.clone());
        }
        let params = SessionParams {
            id: id.clone(),
            stream: stream.to_owned(),
            destination,
            policy,
            aac_bitrate: self.config.aac_bitrate,
            tls: self.config.ingest_tls.clone(),
            dns: self.config.dns.clone(),
            metrics: self.metrics.clone(),
        };
        let relay = Arc::downgrade(self);
        let (stream_key, session_id) = (stream.to_owned(), id.clone());
        let on_end = move || {
            if let Some(relay) = relay.upgrade() {
                relay.sessions().remove(&session_id);
                relay.streams().remove(&stream_key);
            }
        };
        match Session::start(&self.api, offer, params, on_end).await {
            Ok((session, answer)) => {
                self.sessions().insert(id, session.clone());
                Ok((session, answer))
            }
            Err(e) => {
                self.streams().remove(stream);
                Err(e.into())
            }
        }
    }

    /// Stops taking sessions and ends every open one cleanly (RTMP deleteStream), waiting at
    /// most `grace`.
    pub async fn drain(&self, grace: Duration) {
        self.accepting.store(false, Ordering::SeqCst);
        let sessions: Vec<Arc<Session>> = self.sessions().values().cloned().collect();
        for session in &sessions {
            session.stop("relay shutting down");
        }
        let all = futures_util::future::join_all(sessions.iter().map(|s| s.finished()));
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("some sessions did not end within {grace:?}");
        }
    }
}
