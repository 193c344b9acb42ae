//! Opus → AAC off the packet path, on a few threads of their own (`ivs-audio`, one per core by
//! default) that all sessions share. The codecs' CPU time (about half a percent of a core per
//! stream, and what a hostile publisher can make of it, capped by the transcoder's real-time
//! budget) is never spent on the media thread that carries every session's packets.
//!
//! Why a pool that works in rounds rather than a thread per session: a thread woken for each
//! 20 ms packet, and the media thread woken again for its frames, cost more than the codecs
//! (issue #16's measurements in README.md). A worker takes every packet that has queued up,
//! transcodes them all, hands each session its frames in one go, and then waits out the rest of
//! `ROUND` before it looks again, so however many sessions it serves it wakes about once a
//! round; when it finds nothing it sleeps until a packet comes. What that costs is audio
//! latency: up to one round, half a round on average.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;

use crate::media::OpusPacket;
use crate::media::aac::{AacFrame, OpusToAac};

/// Packets of one session waiting for its worker: over a second of 20 ms packets. A session that
/// far behind has its input dropped (the transcoder then conceals the gap) rather than queued
/// without bound, and cannot make the other sessions on its worker wait longer than that.
const QUEUE: usize = 64;

/// How long a worker lets packets gather between rounds: half an Opus packet, so a worker serving
/// many sessions wakes at most 100 times a second, at 5 ms of added audio latency on average.
const ROUND: Duration = Duration::from_millis(10);

/// The name the threads carry in `top -H` and `/proc/<pid>/task/*/comm`.
pub const THREAD_NAME: &str = "ivs-audio";

/// The workers; a session takes the one serving the fewest sessions.
pub struct AudioPool {
    workers: Vec<Arc<Worker>>,
    next_id: AtomicU64,
}

/// The transcoder of one session, on the worker it was given.
pub struct AudioStream {
    worker: Arc<Worker>,
    id: u64,
    queued: Arc<AtomicUsize>,
    frames: mpsc::UnboundedReceiver<Vec<AacFrame>>,
}

/// The session's transcoder stopped (it panicked; the session lives on without audio), or the
/// pool did.
#[derive(Debug, thiserror::Error)]
#[error("the audio transcoder stopped")]
pub struct Stopped;

struct Worker {
    inbox: Mutex<Inbox>,
    wake: Condvar,
    /// Sessions on this worker, for choosing one.
    sessions: AtomicUsize,
}

#[derive(Default)]
struct Inbox {
    jobs: Vec<Job>,
    /// The worker waits for a job (not for the end of a round): the next one must wake it.
    asleep: bool,
    closed: bool,
}

enum Job {
    Start(u64, Box<Transcoding>),
    Packet(u64, OpusPacket),
    Stop(u64),
}

/// What a worker keeps of a session.
struct Transcoding {
    transcoder: OpusToAac,
    session: String,
    queued: Arc<AtomicUsize>,
    /// Frames made this round, handed over at its end.
    made: Vec<AacFrame>,
    frames: mpsc::UnboundedSender<Vec<AacFrame>>,
}

impl AudioPool {
    /// Starts `threads` workers; `transcoders` follows how many sessions they serve.
    pub fn start(threads: usize, transcoders: Gauge) -> std::io::Result<Self> {
        let workers = (0..threads.max(1))
            .map(|_| {
                let worker = Arc::new(Worker { inbox: Mutex::default(), wake: Condvar::new(), sessions: AtomicUsize::new(0) });
                let (serving, gauge) = (worker.clone(), transcoders.clone());
                std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || serving.run(&gauge))?;
                Ok(worker)
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self { workers, next_id: AtomicU64::new(0) })
    }

    /// Gives session `session` (its log lines say which) a worker for `transcoder`.
    pub fn open(&self, transcoder: OpusToAac, session: &str) -> Result<AudioStream, Stopped> {
        let worker = self.workers.iter().min_by_key(|w| w.sessions.load(Ordering::Relaxed)).ok_or(Stopped)?.clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let queued = Arc::new(AtomicUsize::new(0));
        let (sender, frames) = mpsc::unbounded_channel();
        let transcoding = Transcoding { transcoder, session: session.to_owned(), queued: queued.clone(), made: Vec::new(), frames: sender };
        worker.push(Job::Start(id, Box::new(transcoding)))?;
        worker.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(AudioStream { worker, id, queued, frames })
    }
}

impl Drop for AudioPool {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.inbox().closed = true;
            worker.wake.notify_one();
        }
    }
}

impl AudioStream {
    /// Hands a packet over without waiting; `Ok(false)` when the session is a whole queue behind
    /// and the packet was dropped.
    pub fn submit(&self, packet: OpusPacket) -> Result<bool, Stopped> {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Ok(false);
        }
        self.worker.push(Job::Packet(self.id, packet)).map(|()| true)
    }

    /// The next AAC frames, in the order of the packets they came from (cancel-safe).
    pub async fn frames(&mut self) -> Result<Vec<AacFrame>, Stopped> {
        self.frames.recv().await.ok_or(Stopped)
    }
}

impl Drop for AudioStream {
    fn drop(&mut self) {
        self.worker.sessions.fetch_sub(1, Ordering::Relaxed);
        let _ = self.worker.push(Job::Stop(self.id)); // a closed pool has already let go of it
    }
}

impl Worker {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, job: Job) -> Result<(), Stopped> {
        let mut inbox = self.inbox();
        if inbox.closed {
            return Err(Stopped);
        }
        inbox.jobs.push(job);
        if std::mem::take(&mut inbox.asleep) {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The jobs queued since the last round; waits for one when there are none.
    fn next_round(&self, jobs: &mut Vec<Job>) -> bool {
        let mut inbox = self.inbox();
        while inbox.jobs.is_empty() {
            if inbox.closed {
                return false;
            }
            inbox.asleep = true;
            inbox = self.wake.wait(inbox).unwrap_or_else(|p| p.into_inner());
        }
        std::mem::swap(&mut inbox.jobs, jobs);
        true
    }

    fn run(&self, transcoders: &Gauge) {
        let mut sessions: HashMap<u64, Box<Transcoding>> = HashMap::new();
        let mut jobs = Vec::new();
        while self.next_round(&mut jobs) {
            let started = Instant::now();
            for job in jobs.drain(..) {
                match job {
                    Job::Start(id, transcoding) => {
                        transcoders.inc();
                        sessions.insert(id, transcoding);
                    }
                    Job::Packet(id, packet) => {
                        let Some(transcoding) = sessions.get_mut(&id) else { continue };
                        if !transcoding.transcode(&packet) {
                            sessions.remove(&id);
                            transcoders.dec();
                        }
                    }
                    Job::Stop(id) => {
                        if let Some(transcoding) = sessions.remove(&id) {
                            transcoding.finish();
                            transcoders.dec();
                        }
                    }
                }
            }
            for transcoding in sessions.values_mut() {
                transcoding.hand_over();
            }
            std::thread::sleep(ROUND.saturating_sub(started.elapsed()));
        }
        transcoders.dec_by(sessions.len() as i64);
    }
}

impl Transcoding {
    /// Transcodes one packet; false when the codecs panicked and the session must go on without.
    fn transcode(&mut self, packet: &OpusPacket) -> bool {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        let Self { transcoder, made, session, .. } = self;
        match catch_unwind(AssertUnwindSafe(|| transcoder.push(packet.arrived, packet.rtp, &packet.payload, made))) {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(%session, error = %e, "audio transcode failed; frame dropped");
                true
            }
            Err(_) => {
                // Its state may be anything now: it is dropped, the other sessions go on.
                tracing::error!(%session, "the audio transcoder panicked");
                false
            }
        }
    }

    fn hand_over(&mut self) {
        if !self.made.is_empty() {
            // A session that has ended no longer reads; its Stop is on the way.
            let _ = self.frames.send(std::mem::take(&mut self.made));
        }
    }

    fn finish(self: Box<Self>) {
        if self.transcoder.over_budget() > 0 {
            tracing::info!(session = %self.session, packets = self.transcoder.over_budget(), "audio packets dropped for running ahead of real time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::{AudioFormat, Channels};

    const STEREO: AudioFormat = AudioFormat { channels: Channels::Stereo, bitrate: 128_000 };

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

    async fn positions(stream: &mut AudioStream, count: usize) -> Vec<i64> {
        let mut positions = Vec::new();
        while positions.len() < count {
            positions.extend(stream.frames().await.expect("running").iter().map(|f| f.rtp));
        }
        positions
    }

    #[tokio::test]
    async fn sessions_sharing_a_worker_each_get_their_own_frames_in_order() {
        let gauge = Gauge::default();
        let pool = AudioPool::start(1, gauge.clone()).expect("pool");
        let transcoder = || OpusToAac::new(STEREO).expect("transcoder");
        let (mut first, mut second) = (pool.open(transcoder(), "s1").expect("open"), pool.open(transcoder(), "s2").expect("open"));
        for packet in opus_packets(50) {
            assert!(first.submit(packet.clone()).expect("running"), "a queue of {QUEUE} holds 50 packets");
            let shifted = OpusPacket { rtp: packet.rtp + 96_000, ..packet };
            assert!(second.submit(shifted).expect("running"));
        }
        let (a, b) = (positions(&mut first, 40).await, positions(&mut second, 40).await);
        assert!(a.windows(2).all(|w| w[1] - w[0] == 1024), "frames 1024 samples apart, in order: {a:?}");
        assert_eq!(b.iter().map(|p| p - 96_000).collect::<Vec<_>>(), a[..b.len()], "each session's own timeline");
        assert_eq!(gauge.get(), 2);
        drop((first, second));
        let deadline = Instant::now() + Duration::from_secs(5);
        while gauge.get() != 0 && Instant::now() < deadline {
            tokio::time::sleep(ROUND).await;
        }
        assert_eq!(gauge.get(), 0, "the worker let go of both transcoders");
    }

    #[test]
    fn a_session_a_whole_queue_behind_has_its_packets_dropped() {
        // A worker with no thread behind it never takes its jobs: the queue fills.
        let worker = Arc::new(Worker { inbox: Mutex::default(), wake: Condvar::new(), sessions: AtomicUsize::new(1) });
        let (_sender, frames) = mpsc::unbounded_channel();
        let stream = AudioStream { worker, id: 0, queued: Arc::default(), frames };
        let taken = opus_packets(100).into_iter().filter(|p| stream.submit(p.clone()).is_ok_and(|taken| taken)).count();
        assert_eq!(taken, QUEUE);
    }

    #[test]
    fn sessions_are_spread_over_the_workers() {
        let pool = AudioPool::start(2, Gauge::default()).expect("pool");
        let streams: Vec<_> =
            (0..4).map(|n| pool.open(OpusToAac::new(STEREO).expect("transcoder"), &format!("s{n}")).expect("open")).collect();
        assert!(pool.workers.iter().all(|w| w.sessions.load(Ordering::Relaxed) == 2));
        drop(streams);
        assert!(pool.workers.iter().all(|w| w.sessions.load(Ordering::Relaxed) == 0));
    }
}
