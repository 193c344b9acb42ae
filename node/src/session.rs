//! One publisher: its WebRTC peer connection, the media core fed by its tracks, and the
//! destinations its tags go to (`sink::Fanout`), which can change while live. Owns the session's lifecycle: it ends on DELETE, on ICE failure or DTLS close,
//! when media stops for `MEDIA_TIMEOUT`, or at shutdown, and then frees everything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webrtc::api::API;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::sender_report::SenderReport;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use crate::address::AddressPolicy;
use crate::destination::Destination;
use crate::media::aac::{AacFrame, OpusToAac};
use crate::media::clock::Track;
use crate::media::rtp::RtpPacket;
use crate::media::{CoreConfig, Input, MediaCore, Output};
use crate::metrics::Metrics;
use crate::offer::{self, OfferError};
use crate::sink::{Fanout, FanoutError, SessionContext};
use crate::status::{DestinationReport, EndReason, Origin, SessionStatus};
use crate::transcoder::TranscoderThread;

/// A session whose publisher sent nothing for this long is ended.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(8);
/// How long the sinks get to end their RTMP streams cleanly when a session ends; then they are
/// aborted.
const SINK_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for one RTP packet as read off a track: the `webrtc` crate's receive MTU (1460) and more.
const RTP_BUFFER: usize = 1500;
/// How long answering waits for ICE candidates to be gathered (host candidates: instant).
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error("the offer could not be answered: {0}")]
    Negotiation(String),
    #[error("audio transcoder: {0}")]
    Transcoder(#[from] crate::media::aac::TranscodeError),
    #[error("cannot start the session's audio thread: {0}")]
    AudioThread(std::io::Error),
    #[error(transparent)]
    Destinations(#[from] FanoutError),
}

/// What the media task receives from the track readers.
enum TrackEvent {
    /// A packet, with when it came off the track: the start of the relay's latency.
    Rtp(Track, webrtc::rtp::packet::Packet, Instant),
    SenderReport(Track, SenderReport),
    VideoSsrc(u32),
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

/// Closes a peer connection that is dropped before a media task took it over, whatever path
/// (error, cancellation, panic) dropped it: the `webrtc` crate frees sockets and tasks only on
/// `close()`.
struct ClosesOnDrop(Option<Arc<RTCPeerConnection>>);

impl ClosesOnDrop {
    fn take(mut self) -> Arc<RTCPeerConnection> {
        self.0.take().expect("taken once, by the media task")
    }
}

impl std::ops::Deref for ClosesOnDrop {
    type Target = RTCPeerConnection;
    fn deref(&self) -> &RTCPeerConnection {
        self.0.as_deref().expect("only `take` empties it, consuming the guard")
    }
}

impl Drop for ClosesOnDrop {
    fn drop(&mut self) {
        if let Some(pc) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

impl Session {
    /// Answers `offer` and starts the session. `register` sees the session before its task
    /// runs; `on_end` runs once the session has fully ended (both are dropped, never called,
    /// when starting fails).
    pub async fn start(
        api: &API,
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
        let negotiation = |e: webrtc::Error| SessionError::Negotiation(e.to_string());
        let transcoder = if summary.has_audio { Some(OpusToAac::new(params.aac_bitrate)?) } else { None };
        let core = MediaCore::new(CoreConfig { audio: transcoder.as_ref().map(OpusToAac::track), ..CoreConfig::default() });

        let pc = ClosesOnDrop(Some(Arc::new(api.new_peer_connection(RTCConfiguration::default()).await.map_err(negotiation)?)));
        let cancel = CancellationToken::new();
        let (events_tx, events_rx) = mpsc::channel(1024);
        watch_tracks(&pc, events_tx);
        watch_connection(&pc, cancel.clone());

        let offer = RTCSessionDescription::offer(offer_sdp).map_err(negotiation)?;
        pc.set_remote_description(offer).await.map_err(negotiation)?;
        let answer = pc.create_answer(None).await.map_err(negotiation)?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(answer).await.map_err(negotiation)?;
        let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.recv()).await;
        let answer = pc.local_description().await.map(|d| d.sdp).ok_or_else(|| SessionError::Negotiation("no local description".into()))?;

        let status = Arc::new(SessionStatus::new(params.id.clone(), params.stream.clone(), jiff::Timestamp::now()));
        let keyframe_wanted = Arc::new(Notify::new());
        let context = SessionContext {
            metrics: params.metrics.clone(),
            keyframe_wanted: keyframe_wanted.clone(),
            client_policy: params.client_policy,
            tls: params.tls,
            dns: params.dns,
            has_audio: summary.has_audio,
            started: Instant::now(),
            first_keyframe: Arc::new(std::sync::Once::new()),
        };
        let mut fanout = Fanout::new(context, status.clone(), params.max_destinations);
        for (destination, origin) in params.destinations {
            fanout.add(destination, origin)?;
        }
        params.metrics.sessions.inc();
        params.metrics.sessions_started.inc();
        tracing::info!(session = %params.id, stream = %params.stream, audio = summary.has_audio, "session started");

        let audio = transcoder.map(|t| TranscoderThread::spawn(t, &params.id)).transpose().map_err(SessionError::AudioThread)?;
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
            pc: pc.take(),
            core,
            audio,
            events: events_rx,
            control: control_rx,
            fanout,
            keyframe_wanted,
            status,
            metrics: params.metrics,
            cancel,
            video_ssrc: None,
            bytes_received: 0,
        };
        register(&session);
        let task = tokio::spawn(async move {
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

/// The audio thread's next frames; never, for a session without audio.
async fn aac_frames(audio: &mut Option<TranscoderThread>) -> Result<Vec<AacFrame>, crate::transcoder::Stopped> {
    match audio {
        Some(audio) => audio.frames().await,
        None => std::future::pending().await,
    }
}

/// Spawns a reader per incoming track (RTP) and per receiver (RTCP sender reports).
fn watch_tracks(pc: &RTCPeerConnection, events: mpsc::Sender<TrackEvent>) {
    pc.on_track(Box::new(move |track, receiver, _transceiver| {
        let events = events.clone();
        Box::pin(async move {
            let kind = match track.kind() {
                RTPCodecType::Video => Track::Video,
                RTPCodecType::Audio => Track::Audio,
                _ => return,
            };
            if kind == Track::Video {
                let _ = events.send(TrackEvent::VideoSsrc(track.ssrc())).await;
            }
            let rtcp_events = events.clone();
            tokio::spawn(async move {
                while let Ok((packets, _)) = receiver.read_rtcp().await {
                    for packet in packets {
                        if let Some(sr) = packet.as_any().downcast_ref::<SenderReport>()
                            && rtcp_events.send(TrackEvent::SenderReport(kind, sr.clone())).await.is_err()
                        {
                            return;
                        }
                    }
                }
            });
            tokio::spawn(async move {
                // One buffer for the track's life (`read_rtp` allocates one per packet); the
                // packet's payload is copied out of it.
                let mut buf = vec![0u8; RTP_BUFFER];
                while let Ok((packet, _)) = track.read(&mut buf).await {
                    if events.send(TrackEvent::Rtp(kind, packet, Instant::now())).await.is_err() {
                        return;
                    }
                }
            });
        })
    }));
}

/// Ends the session when the peer connection fails or closes.
fn watch_connection(pc: &RTCPeerConnection, cancel: CancellationToken) {
    pc.on_peer_connection_state_change(Box::new(move |state| {
        if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
            tracing::info!(?state, "peer connection ended");
            cancel.cancel();
        }
        Box::pin(async {})
    }));
}

/// The session's one task: feeds the core, sends its tags to the destinations and its keyframe
/// requests to the publisher, and adds or removes destinations.
struct MediaTask {
    pc: Arc<RTCPeerConnection>,
    core: MediaCore,
    /// Where the core's Opus packets are transcoded; `None` without an audio track.
    audio: Option<TranscoderThread>,
    events: mpsc::Receiver<TrackEvent>,
    control: mpsc::Receiver<Control>,
    fanout: Fanout,
    keyframe_wanted: Arc<Notify>,
    status: Arc<SessionStatus>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    video_ssrc: Option<u32>,
    bytes_received: u64,
}

impl MediaTask {
    async fn run(mut self) {
        let mut last_media = Instant::now();
        let mut housekeeping = tokio::time::interval(Duration::from_millis(500));
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        loop {
            let wake = self.core.next_wake().map(tokio::time::Instant::from_std).unwrap_or_else(far);
            tokio::select! {
                () = self.cancel.cancelled() => break,
                event = self.events.recv() => {
                    let Some(event) = event else { break };
                    match event {
                        TrackEvent::Rtp(track, packet, received) => {
                            last_media = received;
                            self.take_rtp(received, track, packet);
                        }
                        TrackEvent::SenderReport(track, sr) => self.core.handle_input(Instant::now(), Input::SenderReport { track, ntp: sr.ntp_time, rtp: sr.rtp_time }),
                        TrackEvent::VideoSsrc(ssrc) => self.video_ssrc = Some(ssrc),
                    }
                }
                frames = aac_frames(&mut self.audio) => match frames {
                    Ok(frames) => self.core.handle_input(Instant::now(), Input::Aac(&frames)),
                    Err(e) => {
                        tracing::error!(error = %e, "the session goes on without audio");
                        self.audio = None;
                    }
                },
                () = tokio::time::sleep_until(wake) => self.core.handle_input(Instant::now(), Input::Tick),
                () = self.keyframe_wanted.notified() => self.request_keyframe().await,
                Some(control) = self.control.recv() => self.take_control(control).await,
                _ = housekeeping.tick() => {
                    self.status.update_core(self.core.stats(), self.bytes_received);
                    if last_media.elapsed() > MEDIA_TIMEOUT {
                        self.status.end(EndReason::NoMedia);
                        break;
                    }
                }
            }
            self.drain_outputs().await;
        }
        self.finish().await;
    }

    fn take_rtp(&mut self, now: Instant, track: Track, packet: webrtc::rtp::packet::Packet) {
        self.bytes_received += packet.payload.len() as u64;
        self.metrics.bytes_received.inc_by(packet.payload.len() as u64);
        let packet = RtpPacket {
            sequence_number: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload: packet.payload,
        };
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

    async fn drain_outputs(&mut self) {
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
                self.request_keyframe().await;
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

    async fn take_control(&mut self, control: Control) {
        match control {
            Control::Add(destination, reply) => {
                let added = self.fanout.add(destination, Origin::Client);
                if matches!(added, Ok((_, true))) {
                    self.request_keyframe().await; // the new destination starts at the next one
                }
                let _ = reply.send(added.map(|(report, _)| report));
            }
            Control::Remove(id, reply) => {
                let _ = reply.send(self.fanout.remove(&id));
            }
        }
    }

    async fn request_keyframe(&mut self) {
        let Some(media_ssrc) = self.video_ssrc else { return };
        self.metrics.keyframe_requests.inc();
        let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
        if let Err(e) = self.pc.write_rtcp(&[Box::new(pli)]).await {
            tracing::debug!(error = %e, "PLI not sent");
        }
    }

    async fn finish(self) {
        let Self { pc, fanout, status, metrics, core, bytes_received, .. } = self;
        status.update_core(core.stats(), bytes_received);
        // Ended from inside: the peer connection failed or closed, or its tracks did.
        status.end(EndReason::PublisherGone);
        if let Some(reason) = status.end_reason() {
            metrics.sessions_ended.get_or_create(&crate::metrics::EndLabel { reason: reason.label() }).inc();
        }
        fanout.close(SINK_CLOSE_TIMEOUT).await; // each sink ends its RTMP stream (deleteStream) or closes its file
        let _ = pc.close().await;
        metrics.sessions.dec();
        let report = status.report();
        tracing::info!(session = %report.id, reason = report.end_reason.as_deref().unwrap_or("ended"), frames = report.video_frames, "session ended");
    }
}
