//! The queue between a session's media task and its sink, bounded in bytes rather than in tags:
//! a keyframe of 1080p can be a hundred times an audio frame, so a tag count bounds nothing.
//! The sender never waits: a full queue is the session's cue to drop media until a keyframe.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::media::Tag;

/// Bytes queued for one sink before the session starts dropping: several seconds of 1080p at
/// 8 Mbit/s, so only an ingest that stalls fills it.
pub const QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// What a queued tag costs besides its body (the `Tag` itself and the channel's node).
const TAG_OVERHEAD: usize = 128;

fn cost(tag: &Tag) -> usize {
    tag.body.len() + TAG_OVERHEAD
}

/// Why a tag was not queued.
#[derive(Debug)]
pub enum SendError {
    /// The queue holds its limit; the tag is handed back.
    Full(Tag),
    /// The sink has ended.
    Closed,
}

pub struct TagSender {
    tx: mpsc::UnboundedSender<Tag>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

pub struct TagReceiver {
    rx: mpsc::UnboundedReceiver<Tag>,
    queued: Arc<AtomicUsize>,
}

/// A queue holding at most `limit` bytes of tags.
pub fn channel(limit: usize) -> (TagSender, TagReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (TagSender { tx, queued: queued.clone(), limit }, TagReceiver { rx, queued })
}

impl TagSender {
    pub fn try_send(&self, tag: Tag) -> Result<(), SendError> {
        let cost = cost(&tag);
        // Only this sender adds, so reading then adding cannot overshoot the limit.
        if self.queued.load(Ordering::Acquire) + cost > self.limit {
            return Err(SendError::Full(tag));
        }
        self.queued.fetch_add(cost, Ordering::AcqRel);
        self.tx.send(tag).map_err(|_| SendError::Closed)
    }

    /// Bytes waiting for the sink now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl TagReceiver {
    /// The next tag; `None` once the sender is gone and the queue is empty. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Tag> {
        let tag = self.rx.recv().await?;
        self.queued.fetch_sub(cost(&tag), Ordering::AcqRel);
        Some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::TagKind;

    fn tag(bytes: usize) -> Tag {
        Tag {
            kind: TagKind::Video,
            timestamp_ms: 0,
            body: vec![0; bytes].into(),
            is_header: false,
            keyframe: false,
            received_at: std::time::Instant::now(),
            info: None,
        }
    }

    #[tokio::test]
    async fn the_queue_holds_bytes_up_to_its_limit_and_frees_them_as_the_sink_reads() {
        let (tx, mut rx) = channel(10_000);
        tx.try_send(tag(4000)).expect("fits");
        tx.try_send(tag(4000)).expect("fits");
        assert!(matches!(tx.try_send(tag(4000)), Err(SendError::Full(t)) if t.body.len() == 4000));
        assert_eq!(tx.queued_bytes(), 2 * (4000 + TAG_OVERHEAD));
        rx.recv().await.expect("a tag");
        tx.try_send(tag(4000)).expect("room again");
        drop(rx);
        assert!(matches!(tx.try_send(tag(1)), Err(SendError::Closed)));
    }
}
