//! Where FLV tags go: an RTMP/RTMPS ingest (`rtmp`) or an FLV file (`file`). Each session has
//! one sink task, fed through a queue bounded in bytes (`queue`) so that a slow ingest never
//! stalls the WebRTC side; the task owns reconnects and reports through the session's status.
//! A sink opens its destination only when the first tag arrives: a session that never gets
//! media never goes live at the ingest.

mod file;
pub mod queue;
mod rtmp;

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::address::AddressPolicy;
use crate::destination::Destination;
use crate::media::{Tag, TagKind};
use crate::metrics::{self, Metrics};
use crate::status::SessionStatus;

/// What a sink needs besides its destination.
#[derive(Clone)]
pub struct SinkContext {
    pub status: Arc<SessionStatus>,
    pub metrics: Arc<Metrics>,
    /// Notified when the sink can resume only at a keyframe (after a reconnect).
    pub keyframe_wanted: Arc<Notify>,
    pub policy: AddressPolicy,
    pub tls: Arc<rustls::ClientConfig>,
    pub dns: crate::dns::Dns,
    pub has_audio: bool,
    /// When the session started (its offer answered), and whether its first keyframe has left.
    pub started: Instant,
    pub first_keyframe: Arc<Once>,
}

pub struct SinkHandle {
    pub tags: queue::TagSender,
    pub task: JoinHandle<()>,
}

/// Starts the sink task for `destination`. Dropping `tags` ends the stream cleanly.
pub fn spawn(destination: Destination, ctx: SinkContext) -> SinkHandle {
    let (tags, rx) = queue::channel(queue::QUEUE_BYTES);
    let task = match destination {
        Destination::Rtmp(target) => tokio::spawn(rtmp::run(target, rx, ctx)),
        Destination::File(path) => tokio::spawn(file::run(path, rx, ctx)),
    };
    SinkHandle { tags, task }
}

/// Records a tag that left for the ingest: bytes and the relay's added latency.
fn observe_sent(ctx: &SinkContext, tag: &Tag, bytes: usize) {
    ctx.status.media_sent(bytes);
    ctx.metrics.bytes_sent.inc_by(bytes as u64);
    if tag.kind == TagKind::Video && tag.keyframe && !tag.is_header {
        ctx.first_keyframe.call_once(|| ctx.metrics.first_keyframe.observe(ctx.started.elapsed().as_secs_f64()));
    }
    let label = match tag.kind {
        TagKind::Video if !tag.is_header => metrics::VIDEO,
        TagKind::Audio if !tag.is_header => metrics::AUDIO,
        _ => return,
    };
    ctx.metrics.relay_latency.get_or_create(&label).observe(tag.received_at.elapsed().as_secs_f64());
}

/// Capped exponential backoff: 0.5 s, 1 s, 2 s … 10 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let steps: Vec<u64> = (0..7).map(|_| b.step().as_millis() as u64).collect();
        assert_eq!(steps, vec![500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        b.reset();
        assert_eq!(b.step(), Duration::from_millis(500));
    }
}
