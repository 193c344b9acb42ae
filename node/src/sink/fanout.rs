//! A session's destinations: one sink per destination, each with its own queue, connection,
//! reconnects and state, all fed the same tags. The tags (and so the Opus→AAC encode and the FLV
//! bodies) are made once per session; a tag's body is shared `Bytes`, so fanning it out copies
//! no media. A slow, refusing or dead destination only ever costs itself: its queue fills, it
//! alone skips to the next keyframe, and the others never wait for it.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::task::JoinHandle;

use super::queue::{self, SendError, TagSender};
use super::{Headers, SessionContext, SinkContext};
use crate::address::AddressPolicy;
use crate::destination::Destination;
use crate::media::{Tag, TagKind};
use crate::status::{DestinationReport, DestinationStatus, Origin, SessionStatus};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FanoutError {
    #[error("a session publishes to at most {0} destinations")]
    TooMany(usize),
    #[error("no such destination")]
    NotFound,
    #[error("the relay's own destinations cannot be removed, only those the publisher added")]
    RelayOwned,
}

/// One destination being fed.
struct Output {
    status: Arc<DestinationStatus>,
    tags: TagSender,
    task: JoinHandle<()>,
    /// Media is skipped until the next keyframe: the destination was added mid-stream, or its
    /// queue overflowed.
    awaiting_keyframe: bool,
    _open: Counted,
}

/// One on the gauge of open destinations for as long as it lives, whatever path drops it.
struct Counted(prometheus_client::metrics::gauge::Gauge);

impl Counted {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Fanout {
    outputs: Vec<Output>,
    /// Sinks of removed destinations, still ending their streams cleanly.
    closing: Vec<JoinHandle<()>>,
    headers: Headers,
    ctx: SessionContext,
    status: Arc<SessionStatus>,
    max: usize,
    next_id: u32,
}

impl Fanout {
    pub fn new(ctx: SessionContext, status: Arc<SessionStatus>, max: usize) -> Self {
        Self { outputs: Vec::new(), closing: Vec::new(), headers: Headers::default(), ctx, status, max, next_id: 1 }
    }

    /// Starts a sink for `destination`. One added while media flows first gets the current
    /// headers, then media from the next keyframe on; `true` in the answer means that keyframe
    /// should be asked for now.
    pub fn add(&mut self, destination: Destination, origin: Origin) -> Result<(DestinationReport, bool), FanoutError> {
        if self.outputs.len() >= self.max {
            return Err(FanoutError::TooMany(self.max));
        }
        let id = format!("d{}", self.next_id);
        self.next_id += 1;
        let host = destination.display_host();
        let status = Arc::new(DestinationStatus::new(id, host.clone(), origin));
        let policy = match origin {
            Origin::Relay => AddressPolicy::Any,
            Origin::Client => self.ctx.client_policy.clone(),
        };
        let label = self.ctx.metrics.destination_label(&host);
        let bytes_sent = self.ctx.metrics.bytes_sent.get_or_create(&label).clone();
        let ctx = SinkContext { session: self.ctx.clone(), status: status.clone(), label, bytes_sent, policy };
        let (tags, rx) = queue::channel(queue::QUEUE_BYTES);
        let mid_stream = self.headers.all().next().is_some();
        for header in self.headers.all() {
            // An empty queue takes a few headers.
            let _ = tags.try_send(header.clone());
        }
        let task = match destination {
            Destination::Rtmp(target) => self.ctx.runtime.spawn(super::rtmp::run(target, rx, ctx)),
            Destination::File(path) => self.ctx.runtime.spawn(super::file::run(path, rx, ctx)),
        };
        tracing::info!(session = %self.status.id(), destination = %status.id(), host = %status.host(), ?origin, "destination added");
        self.status.add_destination(status.clone());
        let report = status.report();
        let open = Counted::new(&self.ctx.metrics.destinations);
        self.outputs.push(Output { status, tags, task, awaiting_keyframe: mid_stream, _open: open });
        Ok((report, mid_stream))
    }

    /// Ends one destination the publisher added: its sink ends the stream cleanly
    /// (deleteStream) while the others go on.
    pub fn remove(&mut self, id: &str) -> Result<(), FanoutError> {
        let index = self.outputs.iter().position(|o| o.status.id() == id).ok_or(FanoutError::NotFound)?;
        if self.outputs[index].status.origin() == Origin::Relay {
            return Err(FanoutError::RelayOwned);
        }
        let Output { status, tags, task, .. } = self.outputs.remove(index);
        drop(tags); // the sink sees the end of its queue and ends the stream
        self.status.remove_destination(id);
        tracing::info!(session = %self.status.id(), destination = %status.id(), host = %status.host(), "destination removed");
        self.closing.retain(|t| !t.is_finished());
        self.closing.push(task);
        Ok(())
    }

    /// Queues `tag` for every destination; `true` when a destination overflowed and needs a
    /// keyframe to resume.
    pub fn forward(&mut self, tag: &Tag) -> bool {
        self.headers.remember(tag);
        let is_media = !tag.is_header && tag.kind != TagKind::Metadata;
        let resumes = tag.kind == TagKind::Video && tag.keyframe;
        let mut keyframe_needed = false;
        for output in &mut self.outputs {
            if output.awaiting_keyframe && is_media {
                if !resumes {
                    continue;
                }
                output.awaiting_keyframe = false;
            }
            match output.tags.try_send(tag.clone()) {
                Ok(()) | Err(SendError::Closed) => {}
                Err(SendError::Full(_)) => {
                    if tag.kind == TagKind::Video {
                        self.ctx.metrics.dropped_frames.inc();
                    }
                    keyframe_needed |= !output.awaiting_keyframe;
                    output.awaiting_keyframe = true;
                }
            }
        }
        keyframe_needed
    }

    /// Ends every destination's stream cleanly, giving the sinks `timeout` in all before the
    /// rest are cut off.
    pub async fn close(self, timeout: Duration) {
        let Self { outputs, closing, .. } = self;
        let mut tasks = closing;
        for Output { tags, task, .. } in outputs {
            drop(tags);
            tasks.push(task);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("a sink did not close in {timeout:?}; aborted");
                task.abort();
                let _ = task.await;
            }
        }
    }
}
