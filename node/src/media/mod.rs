//! The relay's media core, sans-IO: RTP packets, RTCP sender reports and time in; FLV tags and
//! keyframe requests out. No sockets, no tasks, no clock: `session` feeds it and drains it.
//!
//! Layout:
//! * `rtp` — the packet type and wrap-safe counters.
//! * `frames` — reordering, retransmission wait, frame boundaries (video).
//! * `h264` — RTP payloads → access units; parameter sets; keyframe gating.
//! * `aac` — Opus → AAC-LC.
//! * `clock` — both tracks on one timeline.
//! * `flv` — tag bodies and file framing.

pub mod aac;
pub mod clock;
pub mod flv;
pub mod frames;
pub mod h264;
pub mod rtp;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use aac::{AacFrame, OpusToAac, TranscodeError};
use clock::{Timeline, Track};
use flv::StreamInfo;
use frames::{Assembled, FrameAssembler};
use h264::{H264Track, VideoFormat, VideoOutput};
use rtp::RtpPacket;

/// Tunables of the core; the defaults are what the relay runs with.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// How long a missing video packet is waited for (NACK retransmission) before its frame is
    /// given up.
    pub reorder_wait: Duration,
    /// Ask for a keyframe when none came for this long: IVS wants one at most every 2 s, and the
    /// request takes a round trip to be answered.
    pub keyframe_interval: Duration,
    /// Repeat an unanswered keyframe request this often.
    pub keyframe_retry: Duration,
    /// Whether the publisher sends audio (an FLV audio track is announced).
    pub has_audio: bool,
    pub aac_bitrate: u32,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            reorder_wait: Duration::from_millis(300),
            keyframe_interval: Duration::from_millis(1750),
            keyframe_retry: Duration::from_millis(500),
            has_audio: true,
            aac_bitrate: 128_000,
        }
    }
}

/// What the core is given.
#[derive(Debug)]
pub enum Input<'a> {
    Video(&'a RtpPacket),
    Audio(&'a RtpPacket),
    SenderReport { track: Track, ntp: u64, rtp: u32 },
    /// Time passed; due timers fire.
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// `onMetaData`: sent before anything else and again when the picture size changes.
    Metadata,
    Video,
    Audio,
}

/// One FLV tag, ready for an RTMP message or a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub kind: TagKind,
    pub timestamp_ms: u32,
    pub body: Bytes,
    /// A sequence header (AVC decoder configuration or AAC AudioSpecificConfig).
    pub is_header: bool,
    pub keyframe: bool,
    /// When the input that completed this tag arrived: for the latency histogram.
    pub received_at: Instant,
    /// For `Metadata` tags: the facts announced.
    pub info: Option<StreamInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Tag(Tag),
    /// Send a PLI to the publisher.
    RequestKeyframe,
}

/// Counters for the session's status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreStats {
    pub video_frames: u64,
    pub keyframes: u64,
    pub audio_frames: u64,
    pub dropped_frames: u64,
    pub lost_packets: u64,
    pub keyframe_requests: u64,
}

pub struct MediaCore {
    config: CoreConfig,
    timeline: Timeline,
    frames: FrameAssembler,
    video: H264Track,
    audio: Option<OpusToAac>,
    audio_config: Option<Bytes>,
    format: Option<VideoFormat>,
    /// A changed AVC sequence header, sent right before the keyframe that uses it.
    pending_video_header: Option<Bytes>,
    /// Timeline position (µs) of the first forwarded keyframe: FLV time zero.
    start: Option<i64>,
    last_video_ms: u32,
    last_audio_ms: u32,
    last_keyframe_at: Option<Instant>,
    last_request_at: Option<Instant>,
    outputs: VecDeque<Output>,
    stats: CoreStats,
    scratch_video: Vec<VideoOutput>,
    scratch_audio: Vec<AacFrame>,
}

/// Upper bound on buffered video packets (about 4 s of 720p at 2.5 Mbit/s).
const MAX_PENDING_PACKETS: usize = 1024;

impl MediaCore {
    pub fn new(config: CoreConfig) -> Result<Self, TranscodeError> {
        let audio = if config.has_audio { Some(OpusToAac::new(config.aac_bitrate)?) } else { None };
        Ok(Self {
            timeline: Timeline::new(),
            frames: FrameAssembler::new(config.reorder_wait, MAX_PENDING_PACKETS),
            video: H264Track::new(),
            audio_config: audio.as_ref().map(OpusToAac::audio_specific_config),
            audio,
            format: None,
            pending_video_header: None,
            start: None,
            last_video_ms: 0,
            last_audio_ms: 0,
            last_keyframe_at: None,
            last_request_at: None,
            outputs: VecDeque::new(),
            stats: CoreStats::default(),
            scratch_video: Vec::new(),
            scratch_audio: Vec::new(),
            config,
        })
    }

    pub fn stats(&self) -> CoreStats {
        self.stats
    }

    /// Applies one input; then drain `poll_output` and sleep until `next_wake`.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Video(packet) => {
                self.timeline.extend(Track::Video, now, packet.timestamp);
                let assembled = self.frames.push(now, packet.clone());
                self.take_assembled(now, assembled);
            }
            Input::Audio(packet) => self.push_audio(now, packet),
            Input::SenderReport { track, ntp, rtp } => self.timeline.sender_report(track, ntp, rtp),
            Input::Tick => {
                let assembled = self.frames.poll(now);
                self.take_assembled(now, assembled);
            }
        }
        self.request_keyframe_if_due(now);
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the core next needs a `Tick`.
    pub fn next_wake(&self) -> Option<Instant> {
        let request = self.last_request_at.map(|at| at + self.config.keyframe_retry);
        let keyframe = self.last_keyframe_at.map(|at| at + self.config.keyframe_interval);
        [self.frames.deadline(), request.max(keyframe)].into_iter().flatten().min()
    }

    /// Whether keyframes flow as they should; when it is due, queues one `RequestKeyframe`.
    fn request_keyframe_if_due(&mut self, now: Instant) {
        let since = |at: Option<Instant>| at.map(|at| now.saturating_duration_since(at));
        let retry_ok = since(self.last_request_at).is_none_or(|d| d >= self.config.keyframe_retry);
        let needed = !self.video.in_sync() || since(self.last_keyframe_at).is_some_and(|d| d >= self.config.keyframe_interval);
        if needed && retry_ok {
            self.last_request_at = Some(now);
            self.stats.keyframe_requests += 1;
            self.outputs.push_back(Output::RequestKeyframe);
        }
    }

    fn take_assembled(&mut self, now: Instant, assembled: Vec<Assembled>) {
        for item in assembled {
            match item {
                Assembled::Gap { lost_packets } => {
                    self.stats.lost_packets += lost_packets;
                    self.stats.dropped_frames += 1;
                    self.video.lost_frames();
                }
                Assembled::Frame(packets) => {
                    let Some(timestamp) = packets.first().map(|p| p.timestamp) else { continue };
                    let mut outputs = std::mem::take(&mut self.scratch_video);
                    self.video.push_frame(&packets, &mut outputs);
                    let rtp = self.timeline.extend(Track::Video, now, timestamp);
                    for output in outputs.drain(..) {
                        self.take_video(now, rtp, output);
                    }
                    self.scratch_video = outputs;
                }
            }
        }
    }

    fn take_video(&mut self, now: Instant, rtp: i64, output: VideoOutput) {
        match output {
            VideoOutput::ParameterSets(sets) => {
                if let Some(format) = VideoFormat::from_sps(&sets.sps) {
                    if self.format != Some(format) {
                        self.format = Some(format);
                        if self.start.is_some() {
                            self.push_metadata(now);
                        }
                    }
                }
                let body = flv::avc_sequence_header(&sets);
                self.pending_video_header = Some(body);
            }
            VideoOutput::NeedKeyframe(reason) => {
                self.stats.dropped_frames += 1;
                tracing::trace!(?reason, "video frame dropped");
            }
            VideoOutput::Frame(au) => {
                let position = self.timeline.micros(Track::Video, rtp).unwrap_or(0);
                if self.start.is_none() {
                    if !au.keyframe {
                        return;
                    }
                    self.start = Some(position);
                    self.push_metadata(now);
                    if let Some(config) = &self.audio_config {
                        let body = flv::aac_sequence_header(config);
                        self.push_tag(TagKind::Audio, 0, body, true, false, now);
                    }
                }
                let ms = self.to_ms(position, Track::Video);
                if let Some(header) = self.pending_video_header.take() {
                    self.push_tag(TagKind::Video, ms, header, true, true, now);
                }
                if au.keyframe {
                    self.stats.keyframes += 1;
                    self.last_keyframe_at = Some(now);
                }
                self.stats.video_frames += 1;
                self.push_tag(TagKind::Video, ms, flv::avc_frame(&au), false, au.keyframe, now);
            }
        }
    }

    fn push_audio(&mut self, now: Instant, packet: &RtpPacket) {
        let rtp = self.timeline.extend(Track::Audio, now, packet.timestamp);
        let Some(transcoder) = self.audio.as_mut() else { return };
        let mut frames = std::mem::take(&mut self.scratch_audio);
        if let Err(e) = transcoder.push(rtp, &packet.payload, &mut frames) {
            tracing::warn!(error = %e, "audio transcode failed; frame dropped");
        }
        for frame in frames.drain(..) {
            let Some(start) = self.start else { continue };
            let Some(position) = self.timeline.micros(Track::Audio, frame.rtp) else { continue };
            if position < start {
                continue;
            }
            let ms = self.to_ms(position, Track::Audio);
            self.stats.audio_frames += 1;
            self.push_tag(TagKind::Audio, ms, flv::aac_frame(&frame.data), false, false, now);
        }
        self.scratch_audio = frames;
    }

    /// Milliseconds since FLV time zero, never going backwards within a track.
    fn to_ms(&mut self, position: i64, track: Track) -> u32 {
        let since_start = (position - self.start.unwrap_or(position)).max(0) / 1000;
        let ms = u32::try_from(since_start).unwrap_or(u32::MAX);
        let last = match track {
            Track::Video => &mut self.last_video_ms,
            Track::Audio => &mut self.last_audio_ms,
        };
        *last = ms.max(*last);
        *last
    }

    fn push_metadata(&mut self, now: Instant) {
        let Some(video) = self.format else { return };
        let info = StreamInfo { video, has_audio: self.audio.is_some(), audio_bitrate: self.config.aac_bitrate };
        let tag = Tag { kind: TagKind::Metadata, timestamp_ms: self.last_video_ms, body: info.script_tag_body(), is_header: true, keyframe: false, received_at: now, info: Some(info) };
        self.outputs.push_back(Output::Tag(tag));
    }

    fn push_tag(&mut self, kind: TagKind, timestamp_ms: u32, body: Bytes, is_header: bool, keyframe: bool, received_at: Instant) {
        self.outputs.push_back(Output::Tag(Tag { kind, timestamp_ms, body, is_header, keyframe, received_at, info: None }));
    }
}
