//! Opus → AAC off the async workers. Each session with audio gets a thread of its own that owns
//! its `OpusToAac`: the codecs' CPU time (about half a percent of a core per stream, and what a
//! hostile publisher can make of it, capped by the transcoder's real-time budget) is never spent
//! on the tokio workers that carry every session's packets, and one session's audio never waits
//! behind another's. The thread ends when the session drops its handle.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use tokio::sync::mpsc;

use crate::media::OpusPacket;
use crate::media::aac::{AacFrame, OpusToAac};

/// Packets waiting for the thread, and batches of frames waiting for the session: over a second
/// of 20 ms packets each. A thread that far behind has its input dropped (the transcoder then
/// conceals the gap) rather than queued without bound.
const QUEUE: usize = 64;

/// The name the threads carry in `top -H` and `/proc/<pid>/task/*/comm`.
pub const THREAD_NAME: &str = "ivs-audio";

pub struct TranscoderThread {
    packets: SyncSender<OpusPacket>,
    frames: mpsc::Receiver<Vec<AacFrame>>,
}

/// The thread stopped: it panicked, which the session reports and lives on without audio.
#[derive(Debug, thiserror::Error)]
#[error("the audio transcoder thread stopped")]
pub struct Stopped;

impl TranscoderThread {
    /// Starts the thread for session `session` (its log lines say which).
    pub fn spawn(transcoder: OpusToAac, session: &str) -> std::io::Result<Self> {
        let (packets, inbox) = std::sync::mpsc::sync_channel(QUEUE);
        let (outbox, frames) = mpsc::channel(QUEUE);
        let span = tracing::info_span!("audio", %session);
        std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || {
            let _entered = span.entered();
            run(transcoder, &inbox, &outbox);
        })?;
        Ok(Self { packets, frames })
    }

    /// Hands a packet over without waiting; `Ok(false)` when the thread is a whole queue behind
    /// and the packet was dropped.
    pub fn submit(&self, packet: OpusPacket) -> Result<bool, Stopped> {
        match self.packets.try_send(packet) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => Ok(false),
            Err(TrySendError::Disconnected(_)) => Err(Stopped),
        }
    }

    /// The next AAC frames, in the order of the packets they came from (cancel-safe).
    pub async fn frames(&mut self) -> Result<Vec<AacFrame>, Stopped> {
        self.frames.recv().await.ok_or(Stopped)
    }
}

fn run(mut transcoder: OpusToAac, packets: &Receiver<OpusPacket>, frames: &mpsc::Sender<Vec<AacFrame>>) {
    let mut encoded = Vec::new();
    // Ends when the session drops its sender (or its receiver, below).
    while let Ok(packet) = packets.recv() {
        if let Err(e) = transcoder.push(packet.arrived, packet.rtp, &packet.payload, &mut encoded) {
            tracing::warn!(error = %e, "audio transcode failed; frame dropped");
        }
        if !encoded.is_empty() && frames.blocking_send(std::mem::take(&mut encoded)).is_err() {
            break;
        }
    }
    if transcoder.over_budget() > 0 {
        tracing::info!(packets = transcoder.over_budget(), "audio packets dropped for running ahead of real time");
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn opus_packets(count: u32) -> Vec<OpusPacket> {
        let mut encoder = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).expect("encoder");
        let payload: bytes::Bytes = encoder.encode_vec(&[0i16; 1920], 4000).expect("encode").into();
        let t0 = Instant::now();
        (0..count)
            .map(|n| OpusPacket {
                rtp: i64::from(n) * 960,
                payload: payload.clone(),
                arrived: t0 + Duration::from_millis(u64::from(n) * 20),
            })
            .collect()
    }

    #[tokio::test]
    async fn frames_come_back_in_order_from_a_thread_of_their_own() {
        let mut thread = TranscoderThread::spawn(OpusToAac::new(128_000).expect("transcoder"), "s1").expect("thread");
        for packet in opus_packets(50) {
            assert!(thread.submit(packet).expect("running"), "a queue of {QUEUE} holds 50 packets");
        }
        let mut positions = Vec::new();
        while positions.len() < 40 {
            positions.extend(thread.frames().await.expect("running").iter().map(|f| f.rtp));
        }
        assert!(positions.windows(2).all(|w| w[1] - w[0] == 1024), "frames 1024 samples apart, in order: {positions:?}");
    }
}
