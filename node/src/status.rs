//! What a session reports about itself (`GET` on the session URL), shared by the session's
//! media task, its sink and the HTTP layer. Holds no secrets: the destination is kept as its
//! host only.

use std::sync::Mutex;

use serde::Serialize;

use crate::media::CoreStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// WebRTC or the ingest is still being set up, or no keyframe has gone out yet.
    Connecting,
    /// Media reaches the ingest.
    Live,
    /// The ingest failed; the relay is reconnecting while the WebRTC session stays up.
    Reconnecting,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestState {
    Connecting,
    Connected,
    Reconnecting,
    Closed,
}

/// A point-in-time copy of a session's status, as served to clients.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub id: String,
    pub stream: String,
    pub state: State,
    pub ingest: IngestState,
    /// Host (and port) or file path of the destination; never its stream key.
    pub destination: String,
    pub started_at: String,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub video_frames: u64,
    pub keyframes: u64,
    pub audio_frames: u64,
    pub dropped_frames: u64,
    pub keyframe_requests: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub end_reason: Option<String>,
}

#[derive(Debug)]
struct Inner {
    ingest: IngestState,
    media_started: bool,
    core: CoreStats,
    bytes_received: u64,
    bytes_sent: u64,
    reconnects: u64,
    last_error: Option<String>,
    end_reason: Option<EndReason>,
}

#[derive(Debug)]
pub struct SessionStatus {
    id: String,
    stream: String,
    destination: String,
    started_at: jiff::Timestamp,
    inner: Mutex<Inner>,
}

impl SessionStatus {
    pub fn new(id: String, stream: String, destination: String, started_at: jiff::Timestamp) -> Self {
        Self {
            id,
            stream,
            destination,
            started_at,
            inner: Mutex::new(Inner {
                ingest: IngestState::Connecting,
                media_started: false,
                core: CoreStats::default(),
                bytes_received: 0,
                bytes_sent: 0,
                reconnects: 0,
                last_error: None,
                end_reason: None,
            }),
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

    pub fn set_ingest(&self, ingest: IngestState) {
        self.with(|i| i.ingest = ingest);
    }

    pub fn ingest_failed(&self, error: String) {
        self.with(|i| {
            i.ingest = IngestState::Reconnecting;
            i.reconnects += 1;
            i.last_error = Some(error);
        });
    }

    pub fn media_sent(&self, bytes: usize) {
        self.with(|i| {
            i.media_started = true;
            i.bytes_sent += bytes as u64;
        });
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
            let state = match (i.end_reason.is_some(), i.ingest, i.media_started) {
                (true, ..) => State::Ended,
                (false, IngestState::Reconnecting, _) => State::Reconnecting,
                (false, IngestState::Connected, true) => State::Live,
                _ => State::Connecting,
            };
            StatusReport {
                id: self.id.clone(),
                stream: self.stream.clone(),
                state,
                ingest: i.ingest,
                destination: self.destination.clone(),
                started_at: self.started_at.to_string(),
                bytes_received: i.bytes_received,
                bytes_sent: i.bytes_sent,
                video_frames: i.core.video_frames,
                keyframes: i.core.keyframes,
                audio_frames: i.core.audio_frames,
                dropped_frames: i.core.dropped_frames,
                keyframe_requests: i.core.keyframe_requests,
                reconnects: i.reconnects,
                last_error: i.last_error.clone(),
                end_reason: i.end_reason.map(|r| r.to_string()),
            }
        })
    }
}
