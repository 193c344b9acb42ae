//! One publisher: its link to its peer connection on the media thread, the media core fed by
//! its tracks, and the destinations its tags go to (`sink::Fanout`), which can change while
//! live. Owns the session's lifecycle: it ends on DELETE, on ICE failure or DTLS close, when
//! media stops for `MEDIA_TIMEOUT`, or at shutdown, and then frees everything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::address::AddressPolicy;
use crate::destination::Destination;
use crate::media::aac::{AacFrame, AudioFormat, OpusToAac};
use crate::media::clock::Track;
use crate::media::rtp::RtpPacket;
use crate::media::{CoreConfig, Input, MediaCore, Output};
use crate::metrics::Metrics;
use crate::offer::{self, OfferError};
use crate::sink::{Fanout, FanoutError, SessionContext};
use crate::status::{DestinationReport, EndReason, Origin, SessionStatus};
use crate::transcoder::{AudioPool, AudioStream};
use crate::transport::{PeerEvent, PeerEvents, PeerLink, Transport};

/// A session whose publisher sent nothing for this long is ended.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(8);
/// How long the sinks get to end their RTMP streams cleanly when a session ends; then they are
/// aborted.
const SINK_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error("the offer could not be answered: {0}")]
    Negotiation(String),
    #[error("audio transcoder: {0}")]
    Transcoder(#[from] crate::media::aac::TranscodeError),
    #[error(transparent)]
    Audio(#[from] crate::transcoder::Stopped),
    #[error(transparent)]
    Destinations(#[from] FanoutError),
}

/// Everything a session needs from the relay.
pub struct SessionParams {
    pub id: String,
    pub stream: String,
    /// Where the session publishes from the start, in order: the relay's own, then the client's.
    pub destinations: Vec<(Destination, Origin)>,
    pub max_destinations: usize,
    /// What a publisher-chosen destination may resolve to.
    pub client_policy: AddressPolicy,
    pub aac_bitrate: u32,
    pub tls: Arc<rustls::ClientConfig>,
    pub dns: crate::dns::Dns,
    pub metrics: Arc<Metrics>,
    /// Which addresses among the offer's ICE candidates the relay may send checks to.
    pub candidates: AddressPolicy,
}

pub struct Session {
    pub id: String,
    pub stream: String,
    pub status: Arc<SessionStatus>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    control: mpsc::Sender<Control>,
}

/// Why a destination could not be added or removed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ControlError {
    #[error(transparent)]
    Fanout(#[from] FanoutError),
    #[error("the session has ended")]
    Ended,
}

/// Changes to a live session's destinations, carried out by its media task (their one owner).
enum Control {
    Add(Destination, oneshot::Sender<Result<DestinationReport, FanoutError>>),
    Remove(String, oneshot::Sender<Result<(), FanoutError>>),
}

impl Session {
    /// Answers `offer` and starts the session. `register` sees the session before its task
    /// runs; `on_end` runs once the session has fully ended (both are dropped, never called,
    /// when starting fails).
    pub async fn start(
        transport: &Transport,
        audio: &AudioPool,
        offer_sdp: String,
        params: SessionParams,
        register: impl FnOnce(&Arc<Session>),
        on_end: impl FnOnce() + Send + 'static,
    ) -> Result<(Arc<Self>, String), SessionError> {
        let summary = offer::check(&offer_sdp)?;
        let (offer_sdp, candidates) = crate::ice::filter_offer_candidates(&offer_sdp, &params.candidates);
        if candidates.dropped > 0 {
            tracing::debug!(kept = candidates.kept, dropped = candidates.dropped, "offer's ICE candidates filtered");
        }
        let transcoder = summary.audio.map(|channels| OpusToAac::new(AudioFormat::new(channels, params.aac_bitrate))).transpose()?;
        let core = MediaCore::new(CoreConfig { audio: transcoder.as_ref().map(OpusToAac::track), ..CoreConfig::default() });

        // Dropped on any early return, the link closes the connection.
        let (answer, peer, events) = transport.open(offer_sdp).await.map_err(|e| SessionError::Negotiation(e.to_string()))?;
        let cancel = CancellationToken::new();

        let status = Arc::new(SessionStatus::new(params.id.clone(), params.stream.clone(), jiff::Timestamp::now()));
        let keyframe_wanted = Arc::new(Notify::new());
        let context = SessionContext {
            metrics: params.metrics.clone(),
            keyframe_wanted: keyframe_wanted.clone(),
            client_policy: params.client_policy,
            tls: params.tls,
            dns: params.dns,
            has_audio: summary.audio.is_some(),
            started: Instant::now(),
            runtime: transport.runtime(),
            first_keyframe: Arc::new(std::sync::Once::new()),
        };
        let mut fanout = Fanout::new(context, status.clone(), params.max_destinations);
        for (destination, origin) in params.destinations {
            fanout.add(destination, origin)?;
        }
        params.metrics.sessions.inc();
        params.metrics.sessions_started.inc();
        tracing::info!(session = %params.id, stream = %params.stream, audio = ?summary.audio, "session started");

        let audio = transcoder.map(|t| audio.open(t, &params.id)).transpose()?;
        let (control, control_rx) = mpsc::channel(8);
        let session = Arc::new(Self {
            id: params.id.clone(),
            stream: params.stream.clone(),
            status: status.clone(),
            cancel: cancel.clone(),
            task: Mutex::new(None),
            control,
        });
        let media = MediaTask {
            peer,
            core,
            audio,
            events,
            control: control_rx,
            fanout,
            keyframe_wanted,
            status,
            metrics: params.metrics,
            cancel,
            bytes_received: 0,
        };
        register(&session);
        let task = transport.spawn(async move {
            media.run().await;
            on_end();
        });
        *session.task.lock().await = Some(task);
        Ok((session, answer))
    }

    /// Ends the session (idempotent); `finished` waits for it.
    pub fn stop(&self, reason: EndReason) {
        self.status.end(reason);
        self.cancel.cancel();
    }

    /// Adds a destination while live: it gets the stream from the next keyframe on.
    pub async fn add_destination(&self, destination: Destination) -> Result<DestinationReport, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.control.send(Control::Add(destination, reply)).await.map_err(|_| ControlError::Ended)?;
        Ok(answer.await.map_err(|_| ControlError::Ended)??)
    }

    /// Ends one of the destinations the publisher added; the others go on.
    pub async fn remove_destination(&self, id: &str) -> Result<(), ControlError> {
        let (reply, answer) = oneshot::channel();
        self.control.send(Control::Remove(id.to_owned(), reply)).await.map_err(|_| ControlError::Ended)?;
        Ok(answer.await.map_err(|_| ControlError::Ended)??)
    }

    pub async fn finished(&self) {
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

/// The audio worker's next frames for this session; never, for a session without audio.
async fn aac_frames(audio: &mut Option<AudioStream>) -> Result<Vec<AacFrame>, crate::transcoder::Stopped> {
    match audio {
        Some(audio) => audio.frames().await,
        None => std::future::pending().await,
    }
}

/// The session's one task: feeds the core, sends its tags to the destinations and its keyframe
/// requests to the publisher, and adds or removes destinations.
struct MediaTask {
    peer: PeerLink,
    core: MediaCore,
    /// Where the core's Opus packets are transcoded; `None` without an audio track.
    audio: Option<AudioStream>,
    events: PeerEvents,
    control: mpsc::Receiver<Control>,
    fanout: Fanout,
    keyframe_wanted: Arc<Notify>,
    status: Arc<SessionStatus>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    bytes_received: u64,
}

impl MediaTask {
    async fn run(mut self) {
        let mut last_media = Instant::now();
        let mut housekeeping = tokio::time::interval(Duration::from_millis(500));
        // The futures the loop waits on are made once, not on every turn: each new one would
        // register with (and on drop leave) the timer wheel or a waiter list, a lock each time,
        // several hundred turns a second.
        let mut cancelled = std::pin::pin!(self.cancel.clone().cancelled_owned());
        let keyframe_wanted = self.keyframe_wanted.clone();
        let mut wanted = std::pin::pin!(keyframe_wanted.notified());
        let mut wake = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        // What `wake` is set to; `None` when it must be set again (at the start, once elapsed).
        let mut armed: Option<Option<Instant>> = None;
        loop {
            let next = self.core.next_wake();
            if armed != Some(next) {
                let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
                wake.as_mut().reset(next.map(tokio::time::Instant::from_std).unwrap_or_else(far));
                armed = Some(next);
            }
            tokio::select! {
                () = &mut cancelled => break,
                batch = self.events.recv() => {
                    // The media thread let go of the connection: ICE failed or DTLS closed.
                    let Some(batch) = batch else { break };
                    for event in batch {
                        match event {
                            PeerEvent::Rtp(track, packet, received) => {
                                last_media = received;
                                self.take_rtp(received, track, packet);
                            }
                            PeerEvent::SenderReport { track, ntp, rtp } => {
                                self.metrics.sender_report_received(track);
                                self.core.handle_input(Instant::now(), Input::SenderReport { track, ntp, rtp });
                            }
                        }
                        // Tags and keyframe requests go out between packets, as they are made.
                        self.drain_outputs();
                    }
                }
                frames = aac_frames(&mut self.audio) => match frames {
                    Ok(frames) => self.core.handle_input(Instant::now(), Input::Aac(&frames)),
                    Err(e) => {
                        tracing::error!(error = %e, "the session goes on without audio");
                        self.audio = None;
                    }
                },
                () = &mut wake => {
                    armed = None;
                    self.core.handle_input(Instant::now(), Input::Tick);
                }
                () = &mut wanted => {
                    wanted.set(keyframe_wanted.notified());
                    self.request_keyframe();
                }
                Some(control) = self.control.recv() => self.take_control(control),
                _ = housekeeping.tick() => {
                    self.status.update_core(self.core.stats(), self.bytes_received);
                    if last_media.elapsed() > MEDIA_TIMEOUT {
                        self.status.end(EndReason::NoMedia);
                        break;
                    }
                }
            }
            self.drain_outputs();
        }
        self.finish().await;
    }

    fn take_rtp(&mut self, now: Instant, track: Track, packet: RtpPacket) {
        self.bytes_received += packet.payload.len() as u64;
        self.metrics.bytes_received.inc_by(packet.payload.len() as u64);
        let before = self.core.stats();
        match track {
            Track::Video => self.core.handle_input(now, Input::Video(&packet)),
            Track::Audio => self.core.handle_input(now, Input::Audio(&packet)),
        }
        let after = self.core.stats();
        self.metrics.dropped_frames.inc_by(after.dropped_frames - before.dropped_frames);
        self.metrics.lost_packets.inc_by(after.lost_packets - before.lost_packets);
        self.metrics.repaired_packets.inc_by(after.repaired_packets - before.repaired_packets);
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            let keyframe_needed = match output {
                Output::Tag(tag) => self.fanout.forward(&tag),
                Output::RequestKeyframe => true,
                Output::Transcode(packet) => {
                    self.transcode(packet);
                    false
                }
            };
            if keyframe_needed {
                self.request_keyframe();
            }
        }
    }

    fn transcode(&mut self, packet: crate::media::OpusPacket) {
        let Some(audio) = &self.audio else { return };
        match audio.submit(packet) {
            Ok(true) => {}
            Ok(false) => {
                self.metrics.audio_dropped.inc();
            }
            Err(e) => {
                tracing::error!(error = %e, "the session goes on without audio");
                self.audio = None;
            }
        }
    }

    fn take_control(&mut self, control: Control) {
        match control {
            Control::Add(destination, reply) => {
                let added = self.fanout.add(destination, Origin::Client);
                if matches!(added, Ok((_, true))) {
                    self.request_keyframe(); // the new destination starts at the next one
                }
                let _ = reply.send(added.map(|(report, _)| report));
            }
            Control::Remove(id, reply) => {
                let _ = reply.send(self.fanout.remove(&id));
            }
        }
    }

    fn request_keyframe(&mut self) {
        self.metrics.keyframe_requests.inc();
        self.peer.request_keyframe();
    }

    async fn finish(self) {
        let Self { peer, fanout, status, metrics, core, bytes_received, .. } = self;
        status.update_core(core.stats(), bytes_received);
        // Ended from inside: the peer connection failed or closed, or its tracks did.
        status.end(EndReason::PublisherGone);
        if let Some(reason) = status.end_reason() {
            metrics.sessions_ended.get_or_create(&crate::metrics::EndLabel { reason: reason.label() }).inc();
        }
        fanout.close(SINK_CLOSE_TIMEOUT).await; // each sink ends its RTMP stream (deleteStream) or closes its file
        drop(peer); // closes the connection
        metrics.sessions.dec();
        let report = status.report();
        tracing::info!(session = %report.id, reason = report.end_reason.as_deref().unwrap_or("ended"), frames = report.video_frames, "session ended");
    }
}
