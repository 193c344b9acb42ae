//! What a session reports about itself (`GET` on the session URL), shared by the session's
//! media task, its sinks (one per destination) and the HTTP layer. Holds no secrets: a
//! destination is kept as its host only.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::media::CoreStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// WebRTC or the ingests are still being set up, or no keyframe has gone out yet.
    Connecting,
    /// Media reaches at least one destination.
    Live,
    /// No destination is live and at least one is reconnecting; the WebRTC session stays up.
    Reconnecting,
    /// Every destination has failed for good (see each one's `last_error`).
    Failed,
    Ended,
}

/// Why a session ended: its status says it in words, `/metrics` counts it by `label`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher sent DELETE.
    Deleted,
    /// ICE failed or the peer connection closed: the publisher is gone.
    PublisherGone,
    /// Connected (or not), but no media arrived for the media timeout.
    NoMedia,
    /// The client hung up before it got the answer.
    Abandoned,
    ShuttingDown,
}

impl EndReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::PublisherGone => "publisher_gone",
            Self::NoMedia => "no_media",
            Self::Abandoned => "abandoned",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Deleted => "ended by the publisher (DELETE)",
            Self::PublisherGone => "the publisher's connection failed or closed",
            Self::NoMedia => "no media from the publisher for 8 s",
            Self::Abandoned => "the publisher went away before the answer",
            Self::ShuttingDown => "relay shutting down",
        })
    }
}

/// Who chose a destination: the relay's operator (its flags) or the publisher (a header or a
/// call on the session). Only the publisher's own may be removed while live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Relay,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationState {
    /// Waiting for the session's first media, or opening the connection.
    Connecting,
    /// Tags reach the ingest (or the file).
    Live,
    /// The connection failed; retried with backoff, resuming at a keyframe.
    Reconnecting,
    /// Given up: the ingest refused the publish, the destination is not allowed, or the file
    /// cannot be written. `last_error` says why; the session's other destinations go on.
    Failed,
    /// Ended cleanly (the session ended or the destination was removed).
    Closed,
}

/// One destination's state, shared by its sink (which writes it) and the session's report.
#[derive(Debug)]
pub struct DestinationStatus {
    id: String,
    /// Host and port, or the file's path: never the stream key.
    host: String,
    origin: Origin,
    inner: Mutex<DestinationInner>,
}

#[derive(Debug)]
struct DestinationInner {
    state: DestinationState,
    bytes_sent: u64,
    reconnects: u64,
    last_error: Option<String>,
}

/// A point-in-time copy of one destination's status.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationReport {
    pub id: String,
    pub host: String,
    pub origin: Origin,
    pub state: DestinationState,
    pub bytes_sent: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

impl DestinationStatus {
    pub fn new(id: String, host: String, origin: Origin) -> Self {
        let inner = DestinationInner { state: DestinationState::Connecting, bytes_sent: 0, reconnects: 0, last_error: None };
        Self { id, host, origin, inner: Mutex::new(inner) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut DestinationInner) -> T) -> T {
        // A panic while holding this lock cannot leave the counters inconsistent; keep going.
        f(&mut self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    pub fn state(&self) -> DestinationState {
        self.with(|i| i.state)
    }

    /// Tags went out on the current connection.
    pub fn media_sent(&self, bytes: usize) {
        self.with(|i| {
            i.state = DestinationState::Live;
            i.bytes_sent += bytes as u64;
        });
    }

    /// The connection failed and will be retried.
    pub fn retrying(&self, error: String) {
        self.with(|i| {
            i.state = DestinationState::Reconnecting;
            i.reconnects += 1;
            i.last_error = Some(error);
        });
    }

    /// Given up for good.
    pub fn failed(&self, error: String) {
        self.with(|i| {
            i.state = DestinationState::Failed;
            i.last_error = Some(error);
        });
    }

    /// Ended cleanly; a failed destination stays failed, so its reason stays readable.
    pub fn closed(&self) {
        self.with(|i| {
            if i.state != DestinationState::Failed {
                i.state = DestinationState::Closed;
            }
        });
    }

    pub fn report(&self) -> DestinationReport {
        self.with(|i| DestinationReport {
            id: self.id.clone(),
            host: self.host.clone(),
            origin: self.origin,
            state: i.state,
            bytes_sent: i.bytes_sent,
            reconnects: i.reconnects,
            last_error: i.last_error.clone(),
        })
    }
}

/// A point-in-time copy of a session's status, as served to clients.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub id: String,
    pub stream: String,
    pub state: State,
    pub started_at: String,
    pub bytes_received: u64,
    /// Sent to all destinations together.
    pub bytes_sent: u64,
    pub video_frames: u64,
    pub keyframes: u64,
    pub audio_frames: u64,
    pub dropped_frames: u64,
    pub keyframe_requests: u64,
    pub destinations: Vec<DestinationReport>,
    pub end_reason: Option<String>,
}

#[derive(Debug)]
struct Inner {
    core: CoreStats,
    bytes_received: u64,
    end_reason: Option<EndReason>,
    destinations: Vec<Arc<DestinationStatus>>,
}

#[derive(Debug)]
pub struct SessionStatus {
    id: String,
    stream: String,
    started_at: jiff::Timestamp,
    inner: Mutex<Inner>,
}

impl SessionStatus {
    pub fn new(id: String, stream: String, started_at: jiff::Timestamp) -> Self {
        Self {
            id,
            stream,
            started_at,
            inner: Mutex::new(Inner { core: CoreStats::default(), bytes_received: 0, end_reason: None, destinations: Vec::new() }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding this lock cannot leave the counters inconsistent; keep going.
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut inner)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn add_destination(&self, destination: Arc<DestinationStatus>) {
        self.with(|i| i.destinations.push(destination));
    }

    pub fn remove_destination(&self, id: &str) {
        self.with(|i| i.destinations.retain(|d| d.id() != id));
    }

    pub fn update_core(&self, core: CoreStats, bytes_received: u64) {
        self.with(|i| {
            i.core = core;
            i.bytes_received = bytes_received;
        });
    }

    /// Records why the session ends; the first reason given wins.
    pub fn end(&self, reason: EndReason) {
        self.with(|i| {
            i.end_reason.get_or_insert(reason);
        });
    }

    pub fn end_reason(&self) -> Option<EndReason> {
        self.with(|i| i.end_reason)
    }

    pub fn report(&self) -> StatusReport {
        self.with(|i| {
            let destinations: Vec<DestinationReport> = i.destinations.iter().map(|d| d.report()).collect();
            let any = |state| destinations.iter().any(|d| d.state == state);
            let state = if i.end_reason.is_some() {
                State::Ended
            } else if any(DestinationState::Live) {
                State::Live
            } else if any(DestinationState::Reconnecting) {
                State::Reconnecting
            } else if !destinations.is_empty() && destinations.iter().all(|d| d.state == DestinationState::Failed) {
                State::Failed
            } else {
                State::Connecting
            };
            StatusReport {
                id: self.id.clone(),
                stream: self.stream.clone(),
                state,
                started_at: self.started_at.to_string(),
                bytes_received: i.bytes_received,
                bytes_sent: destinations.iter().map(|d| d.bytes_sent).sum(),
                video_frames: i.core.video_frames,
                keyframes: i.core.keyframes,
                audio_frames: i.core.audio_frames,
                dropped_frames: i.core.dropped_frames,
                keyframe_requests: i.core.keyframe_requests,
                destinations,
                end_reason: i.end_reason.map(|r| r.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(states: &[DestinationState]) -> SessionStatus {
        let session = SessionStatus::new("s".into(), "cam1".into(), jiff::Timestamp::UNIX_EPOCH);
        for (n, state) in states.iter().enumerate() {
            let d = Arc::new(DestinationStatus::new(format!("d{n}"), "host:1935".into(), Origin::Relay));
            match state {
                DestinationState::Live => d.media_sent(10),
                DestinationState::Reconnecting => d.retrying("gone".into()),
                DestinationState::Failed => d.failed("refused".into()),
                DestinationState::Closed => d.closed(),
                DestinationState::Connecting => {}
            }
            session.add_destination(d);
        }
        session
    }

    #[test]
    fn a_session_is_live_while_any_destination_is_and_failed_only_when_all_are() {
        use DestinationState::*;
        assert_eq!(session(&[Failed, Live, Reconnecting]).report().state, State::Live);
        assert_eq!(session(&[Failed, Reconnecting]).report().state, State::Reconnecting);
        assert_eq!(session(&[Failed, Connecting]).report().state, State::Connecting);
        assert_eq!(session(&[Failed, Failed]).report().state, State::Failed);
        let s = session(&[Live, Live]);
        assert_eq!(s.report().bytes_sent, 20);
        s.remove_destination("d0");
        assert_eq!(s.report().destinations.len(), 1);
    }

    #[test]
    fn a_failed_destination_keeps_its_reason_when_the_session_closes_it() {
        let d = DestinationStatus::new("d1".into(), "host:1935".into(), Origin::Client);
        d.failed("ingest refused: publish: NetStream.Publish.BadName".into());
        d.closed();
        let report = d.report();
        assert_eq!(report.state, DestinationState::Failed);
        assert!(report.last_error.is_some_and(|e| e.contains("BadName")));
    }
}
