//! The relay's media core, sans-IO: RTP packets, RTCP sender reports, encoded AAC frames and
//! time in; FLV tags, keyframe requests and Opus packets to transcode out. No sockets, no tasks,
//! no clock, no codec work: `session` feeds it and drains it, and hands the Opus packets to the
//! session's audio worker (`crate::transcoder`), whose AAC frames come back as `Input::Aac`.
//!
//! Layout:
//! * `rtp` — the packet type and wrap-safe counters.
//! * `frames` — reordering, retransmission wait, frame boundaries (video).
//! * `h264` — RTP payloads → access units; parameter sets; keyframe gating.
//! * `aac` — Opus → AAC-LC (run by the caller, off the core).
//! * `clock` — both tracks on one timeline.
//! * `flv` — tag bodies and file framing.
//! * `keyframes` — when to ask the publisher for a keyframe.

pub mod aac;
pub mod clock;
pub mod flv;
pub mod frames;
pub mod h264;
pub mod keyframes;
pub mod rtp;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use aac::AacFrame;
use clock::{Timeline, Track};
use flv::StreamInfo;
use frames::{Assembled, FrameAssembler};
use h264::{H264Track, VideoFormat, VideoOutput};
use keyframes::{KeyframeConfig, KeyframeRequests};
use rtp::RtpPacket;

/// Tunables of the core; the defaults are what the relay runs with.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// How long a missing video packet is waited for (NACK retransmission) before its frame is
    /// given up.
    pub reorder_wait: Duration,
    /// When keyframes are asked for.
    pub keyframes: KeyframeConfig,
    /// The AAC track announced when the publisher sends audio.
    pub audio: Option<AacTrack>,
}

/// What the FLV stream says of its audio: the encoder's AudioSpecificConfig, channels and bitrate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacTrack {
    pub specific_config: Bytes,
    pub format: aac::AudioFormat,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self { reorder_wait: Duration::from_millis(300), keyframes: KeyframeConfig::default(), audio: None }
    }
}

/// What the core is given.
#[derive(Debug)]
pub enum Input<'a> {
    Video(&'a RtpPacket),
    Audio(&'a RtpPacket),
    SenderReport {
        track: Track,
        ntp: u64,
        rtp: u32,
    },
    /// AAC frames the transcoder made of earlier `Output::Transcode` packets, in order.
    Aac(&'a [AacFrame]),
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
    /// Transcode this Opus packet; its AAC frames come back as `Input::Aac`.
    Transcode(OpusPacket),
}

/// An audio packet on the track's extended 48 kHz RTP clock, for `aac::OpusToAac::push`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpusPacket {
    pub rtp: i64,
    pub payload: Bytes,
    pub arrived: Instant,
}

/// Counters for the session's status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreStats {
    pub video_frames: u64,
    pub keyframes: u64,
    pub audio_frames: u64,
    pub dropped_frames: u64,
    pub lost_packets: u64,
    /// Video packets that came after a later one, in time to complete their frame.
    pub repaired_packets: u64,
    pub keyframe_requests: u64,
}

pub struct MediaCore {
    config: CoreConfig,
    timeline: Timeline,
    frames: FrameAssembler,
    video: H264Track,
    format: Option<VideoFormat>,
    /// A changed AVC sequence header, sent right before the keyframe that uses it.
    pending_video_header: Option<Bytes>,
    /// Timeline position (µs) of the first forwarded keyframe: FLV time zero.
    start: Option<i64>,
    last_video_ms: u32,
    last_audio_ms: u32,
    keyframes: KeyframeRequests,
    outputs: VecDeque<Output>,
    stats: CoreStats,
    scratch_video: Vec<VideoOutput>,
    /// When recent Opus packets arrived, by their first sample: an AAC frame's latency counts
    /// from the arrival of its first sample, not of the packet that completed it.
    audio_arrivals: VecDeque<(i64, Instant)>,
}

/// Opus packets whose arrival is remembered: 20 ms each, more than the AAC encoder's delay.
const AUDIO_ARRIVALS_KEPT: usize = 16;

/// An AAC frame lasts 1024 / 48 kHz = 21.33 ms; consecutive audio tags are at least this far apart.
const MIN_AUDIO_STEP_MS: u32 = (aac::AAC_FRAME_SAMPLES as u32 * 1000) / aac::SAMPLE_RATE;

/// Upper bound on buffered video packets (about 4 s of 720p at 2.5 Mbit/s).
const MAX_PENDING_PACKETS: usize = 1024;

impl MediaCore {
    pub fn new(config: CoreConfig) -> Self {
        Self {
            timeline: Timeline::new(),
            frames: FrameAssembler::new(config.reorder_wait, MAX_PENDING_PACKETS),
            video: H264Track::new(),
            format: None,
            pending_video_header: None,
            start: None,
            last_video_ms: 0,
            last_audio_ms: 0,
            keyframes: KeyframeRequests::new(config.keyframes),
            outputs: VecDeque::new(),
            stats: CoreStats::default(),
            scratch_video: Vec::new(),
            audio_arrivals: VecDeque::with_capacity(AUDIO_ARRIVALS_KEPT),
            config,
        }
    }

    pub fn stats(&self) -> CoreStats {
        CoreStats { repaired_packets: self.frames.repaired(), ..self.stats }
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
            Input::Aac(frames) => self.take_aac(now, frames),
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
        [self.frames.deadline(), self.keyframes.next_wake()].into_iter().flatten().min()
    }

    /// Whether keyframes flow as they should; when one is due, queues one `RequestKeyframe`.
    fn request_keyframe_if_due(&mut self, now: Instant) {
        if self.keyframes.poll(now, self.video.in_sync()) {
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
                if let Some(format) = VideoFormat::from_sps(sets.sps())
                    && self.format != Some(format)
                {
                    self.format = Some(format);
                    if self.start.is_some() {
                        self.push_metadata(now);
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
                    if let Some(audio) = &self.config.audio {
                        let body = flv::aac_sequence_header(&audio.specific_config);
                        self.push_tag(TagKind::Audio, 0, body, true, false, now);
                    }
                }
                // Each frame strictly after the one before: a player's demuxer refuses repeats.
                let mut ms = self.flv_timestamp(position, Track::Video);
                if self.stats.video_frames > 0 && ms <= self.last_video_ms {
                    ms = self.last_video_ms.saturating_add(1);
                }
                self.last_video_ms = ms;
                if let Some(header) = self.pending_video_header.take() {
                    self.push_tag(TagKind::Video, ms, header, true, true, now);
                }
                if au.keyframe {
                    self.stats.keyframes += 1;
                    self.keyframes.keyframe(now);
                }
                self.stats.video_frames += 1;
                self.push_tag(TagKind::Video, ms, flv::avc_frame(&au), false, au.keyframe, now);
            }
        }
    }

    fn push_audio(&mut self, now: Instant, packet: &RtpPacket) {
        let rtp = self.timeline.extend(Track::Audio, now, packet.timestamp);
        if self.config.audio.is_none() {
            return;
        }
        if self.audio_arrivals.len() == AUDIO_ARRIVALS_KEPT {
            self.audio_arrivals.pop_front();
        }
        self.audio_arrivals.push_back((rtp, now));
        self.outputs.push_back(Output::Transcode(OpusPacket { rtp, payload: packet.payload.clone(), arrived: now }));
    }

    fn take_aac(&mut self, now: Instant, frames: &[AacFrame]) {
        if self.config.audio.is_none() {
            return;
        }
        for frame in frames {
            let Some(start) = self.start else { continue };
            let Some(position) = self.timeline.micros(Track::Audio, frame.rtp) else { continue };
            if position < start {
                continue;
            }
            // Each frame at least one frame's duration after the last: when a sender report
            // moves the audio anchor back a few ms, frames would overlap and players (and
            // ffmpeg) refuse them; the timeline catches up within a few frames.
            let mut ms = self.flv_timestamp(position, Track::Audio);
            if self.stats.audio_frames > 0 {
                ms = ms.max(self.last_audio_ms.saturating_add(MIN_AUDIO_STEP_MS));
            }
            self.last_audio_ms = ms;
            self.stats.audio_frames += 1;
            let first_sample_arrived = self
                .audio_arrivals
                .iter()
                .rev()
                .find(|(rtp, _)| *rtp <= frame.rtp)
                .or(self.audio_arrivals.front())
                .map_or(now, |(_, at)| *at);
            self.push_tag(TagKind::Audio, ms, flv::aac_frame(&frame.data), false, false, first_sample_arrived);
        }
    }

    /// Milliseconds since FLV time zero, never before the track's last one (the caller makes
    /// media tags strictly increasing and records the one it sends).
    fn flv_timestamp(&self, position: i64, track: Track) -> u32 {
        let since_start = position.saturating_sub(self.start.unwrap_or(position)).max(0) / 1000;
        let ms = u32::try_from(since_start).unwrap_or(u32::MAX);
        let last = match track {
            Track::Video => self.last_video_ms,
            Track::Audio => self.last_audio_ms,
        };
        ms.max(last)
    }

    fn push_metadata(&mut self, now: Instant) {
        let Some(video) = self.format else { return };
        let info = StreamInfo { video, audio: self.config.audio.as_ref().map(|audio| audio.format) };
        let tag = Tag {
            kind: TagKind::Metadata,
            timestamp_ms: self.last_video_ms,
            body: info.script_tag_body(),
            is_header: true,
            keyframe: false,
            received_at: now,
            info: Some(info),
        };
        self.outputs.push_back(Output::Tag(tag));
    }

    fn push_tag(&mut self, kind: TagKind, timestamp_ms: u32, body: Bytes, is_header: bool, keyframe: bool, received_at: Instant) {
        self.outputs.push_back(Output::Tag(Tag { kind, timestamp_ms, body, is_header, keyframe, received_at, info: None }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1,
        0x83, 0x24, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    /// A video frame as a browser packetizes it: keyframes lead with a STAP-A of SPS and PPS.
    fn video_frame(seq: &mut u16, ts: u32, keyframe: bool) -> Vec<RtpPacket> {
        let mut payloads = Vec::new();
        if keyframe {
            let mut stap = vec![24];
            for nal in [SPS, PPS] {
                stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
                stap.extend_from_slice(nal);
            }
            payloads.push(stap);
            payloads.push(vec![0x65, 0x88, 1, 2, 3]);
        } else {
            payloads.push(vec![0x41, 0x9a, 4, 5]);
        }
        let last = payloads.len() - 1;
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                *seq = seq.wrapping_add(1);
                RtpPacket { sequence_number: *seq, timestamp: ts, marker: i == last, payload: payload.into() }
            })
            .collect()
    }

    /// A core with audio, and the transcoder a session would run for it.
    fn core_with_audio() -> (MediaCore, aac::OpusToAac) {
        let transcoder = aac::OpusToAac::new(aac::AudioFormat::new(aac::Channels::Stereo, 128_000)).expect("transcoder");
        (MediaCore::new(CoreConfig { audio: Some(transcoder.track()), ..CoreConfig::default() }), transcoder)
    }

    /// Drains the core; its Opus packets are transcoded inline (a session does it on its audio
    /// thread) and fed back.
    fn tags(core: &mut MediaCore, mut transcoder: Option<&mut aac::OpusToAac>) -> (Vec<Tag>, usize) {
        let (mut tags, mut requests, mut frames) = (Vec::new(), 0, Vec::new());
        while let Some(output) = core.poll_output() {
            match output {
                Output::Tag(tag) => tags.push(tag),
                Output::RequestKeyframe => requests += 1,
                Output::Transcode(packet) => {
                    let transcoder = transcoder.as_deref_mut().expect("no audio packet without an audio track");
                    transcoder.push(packet.arrived, packet.rtp, &packet.payload, &mut frames).expect("transcode");
                    core.handle_input(packet.arrived, Input::Aac(&frames));
                    frames.clear();
                }
            }
        }
        (tags, requests)
    }

    #[test]
    fn the_stream_opens_with_metadata_and_headers_then_the_keyframe() {
        let t0 = Instant::now();
        let (mut core, mut transcoder) = core_with_audio();
        let mut seq = 100;
        // A delta frame first: dropped, and a keyframe is asked for at once.
        for p in video_frame(&mut seq, 0, false) {
            core.handle_input(t0, Input::Video(&p));
        }
        let (out, requests) = tags(&mut core, Some(&mut transcoder));
        assert!(out.is_empty());
        assert_eq!(requests, 1);
        for p in video_frame(&mut seq, 3000, true) {
            core.handle_input(t0 + Duration::from_millis(33), Input::Video(&p));
        }
        let (out, _) = tags(&mut core, Some(&mut transcoder));
        let kinds: Vec<(TagKind, bool)> = out.iter().map(|t| (t.kind, t.is_header)).collect();
        assert_eq!(kinds, vec![(TagKind::Metadata, true), (TagKind::Audio, true), (TagKind::Video, true), (TagKind::Video, false)]);
        let info = out[0].info.expect("metadata");
        assert_eq!((info.video.width, info.video.height), (1280, 720));
        assert!(out[3].keyframe);
        assert_eq!(out[3].timestamp_ms, 0);
    }

    #[test]
    fn timestamps_follow_the_rtp_clock_and_keyframes_are_requested_every_interval() {
        let t0 = Instant::now();
        let mut core = MediaCore::new(CoreConfig::default());
        let mut seq = 65530; // wraps during the test
        let mut video_ms = Vec::new();
        let mut requests = 0;
        for n in 0..90u32 {
            let now = t0 + Duration::from_millis(u64::from(n) * 33);
            for p in video_frame(&mut seq, n * 3000, n == 0) {
                core.handle_input(now, Input::Video(&p));
            }
            core.handle_input(now, Input::Tick);
            let (out, r) = tags(&mut core, None);
            requests += r;
            video_ms.extend(out.iter().filter(|t| t.kind == TagKind::Video && !t.is_header).map(|t| t.timestamp_ms));
        }
        assert_eq!(video_ms.len(), 90);
        assert_eq!(video_ms[30], 1000);
        assert!(video_ms.windows(2).all(|w| w[1] > w[0]));
        // One at the start (nothing decodable yet), then, with no new keyframe in 3 s, at
        // 1.65 s (the deadline, 1.9 s, less the 250 ms lead it starts with: no answer seen) and
        // every 0.5 s after.
        assert_eq!(requests, 4, "keyframe requests");
        assert_eq!(core.stats().keyframes, 1);
    }

    #[test]
    fn a_publisher_slow_to_answer_still_sends_keyframes_at_most_two_seconds_apart() {
        // A browser on a busy machine: each request is answered with a keyframe 400 ms later
        // (repeats of a request it is still answering change nothing); otherwise delta frames.
        const ANSWER: Duration = Duration::from_millis(400);
        let t0 = Instant::now();
        let mut core = MediaCore::new(CoreConfig::default());
        let mut seq = 0;
        let mut answer_at: Option<Instant> = None;
        let mut keyframes_ms = Vec::new();
        for n in 0..600u32 {
            let now = t0 + Duration::from_millis(u64::from(n) * 100 / 3);
            let keyframe = n == 0 || answer_at.is_some_and(|at| now >= at);
            if keyframe {
                answer_at = None;
            }
            for p in video_frame(&mut seq, n * 3000, keyframe) {
                core.handle_input(now, Input::Video(&p));
            }
            core.handle_input(now, Input::Tick);
            let (out, requests) = tags(&mut core, None);
            if requests > 0 && answer_at.is_none() {
                answer_at = Some(now + ANSWER);
            }
            keyframes_ms.extend(out.iter().filter(|t| t.kind == TagKind::Video && t.keyframe && !t.is_header).map(|t| t.timestamp_ms));
        }
        // The first packet, before its keyframe was whole, asked for one too: its answer, 400 ms
        // later, tells the relay how far ahead to ask from the first deadline on. (It ticks once
        // a frame here, so it asks up to 33 ms late.)
        assert!(keyframes_ms.len() >= 9, "{keyframes_ms:?}");
        assert_eq!(keyframes_ms[1], 400, "the answer to the first request");
        let gaps: Vec<u32> = keyframes_ms[1..].windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&gap| (1800..=2000).contains(&gap)), "{gaps:?}");
    }

    #[test]
    fn a_sender_report_moving_audio_back_never_makes_audio_tags_overlap() {
        let t0 = Instant::now();
        let (mut core, mut transcoder) = core_with_audio();
        let mut seq = 0;
        for p in video_frame(&mut seq, 0, true) {
            core.handle_input(t0, Input::Video(&p));
        }
        let mut encoder = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).expect("encoder");
        let packet: bytes::Bytes = encoder.encode_vec(&[0i16; 1920], 4000).expect("encode").into();
        let mut audio_ms = Vec::new();
        for n in 0..150u32 {
            let now = t0 + Duration::from_millis(u64::from(n) * 20);
            let rtp = RtpPacket { sequence_number: n as u16, timestamp: n * 960, marker: false, payload: packet.clone() };
            core.handle_input(now, Input::Audio(&rtp));
            if n == 75 {
                // The sender says audio second 1 was captured 4 ms before video's first second.
                let ntp = 1000u64 << 32;
                core.handle_input(now, Input::SenderReport { track: Track::Video, ntp, rtp: 0 });
                core.handle_input(now, Input::SenderReport { track: Track::Audio, ntp: ntp + (996u64 << 32) / 1000, rtp: 48_000 });
            }
            let (out, _) = tags(&mut core, Some(&mut transcoder));
            audio_ms.extend(out.iter().filter(|t| t.kind == TagKind::Audio && !t.is_header).map(|t| t.timestamp_ms));
        }
        assert!(audio_ms.len() > 100, "{} audio tags", audio_ms.len());
        for pair in audio_ms.windows(2) {
            assert!(pair[1] >= pair[0] + MIN_AUDIO_STEP_MS, "audio tags {} and {} overlap", pair[0], pair[1]);
        }
        // The timeline is not held back for good: the last tag is where the clock puts it.
        let last = *audio_ms.last().expect("tags");
        assert!((2880..=2960).contains(&last), "last audio tag at {last} ms");
    }
}
