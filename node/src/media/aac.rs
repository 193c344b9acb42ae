//! Opus (48 kHz, from WebRTC) → PCM → AAC-LC (for FLV/RTMP). The two codec libraries live
//! behind this module only: libopus (`opus` crate, vendored) and Fraunhofer FDK AAC (`fdk-aac`,
//! bundled C++ source, FDK licence — see `licenses/fdk-aac-NOTICE.txt`).
//!
//! Timestamps stay in the 48 kHz RTP clock (extended to i64): each AAC frame is stamped with the
//! position of its first input sample, minus the encoder's delay. Short gaps are concealed by
//! libopus; long ones restart the PCM buffer at the new position.
//!
//! Work is bounded by the wall clock: what a packet would cost (the samples it decodes to plus
//! any gap concealed before it) comes out of a budget that refills in real time, so a publisher
//! whose timestamps or packets claim more audio than time passed cannot make the relay decode
//! and encode faster than real time for more than `MAX_AHEAD` (time comes in as an argument).

use std::time::{Duration, Instant};

use bytes::Bytes;
use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};
use thiserror::Error;

use super::AacTrack;

pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per channel in one AAC-LC frame.
pub const AAC_FRAME_SAMPLES: usize = 1024;
/// Longest Opus packet: 120 ms.
const MAX_OPUS_SAMPLES: usize = 5760;
/// Gaps up to this long (per channel samples, 100 ms) are filled by packet-loss concealment.
const MAX_CONCEALED_SAMPLES: i64 = 4800;
/// Concealment works in steps of 20 ms.
const CONCEALMENT_STEP: usize = 960;
/// How far decoding may run ahead of the wall clock: a burst of packets held up by the network
/// fits in it.
const MAX_AHEAD: Duration = Duration::from_millis(500);

/// The channels of the AAC track, chosen from what the offer says the publisher will send
/// (RFC 7587's `sprop-stereo`, default mono): browsers send mono unless asked for stereo, and a
/// mono track costs the encoder half of a stereo one. Opus may switch per packet, so the decoder
/// mixes whatever comes to this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    Mono,
    Stereo,
}

impl Channels {
    pub fn count(self) -> u8 {
        match self {
            Self::Mono => 1,
            Self::Stereo => 2,
        }
    }

    fn opus(self) -> opus::Channels {
        match self {
            Self::Mono => opus::Channels::Mono,
            Self::Stereo => opus::Channels::Stereo,
        }
    }

    fn fdk(self) -> ChannelMode {
        match self {
            Self::Mono => ChannelMode::Mono,
            Self::Stereo => ChannelMode::Stereo,
        }
    }
}

/// What the AAC track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    pub channels: Channels,
    /// Bits per second.
    pub bitrate: u32,
}

impl AudioFormat {
    /// `stereo_bitrate` for stereo, half of it for mono: the same bits per channel.
    pub fn new(channels: Channels, stereo_bitrate: u32) -> Self {
        let bitrate = match channels {
            Channels::Mono => stereo_bitrate / 2,
            Channels::Stereo => stereo_bitrate,
        };
        Self { channels, bitrate }
    }
}

/// Samples (per channel) the transcoder may still produce: refills at the sample rate, up to
/// `MAX_AHEAD` worth.
#[derive(Debug)]
struct RealTimeBudget {
    samples: i64,
    refilled_at: Option<Instant>,
}

impl RealTimeBudget {
    const CAP: i64 = SAMPLE_RATE as i64 * MAX_AHEAD.as_millis() as i64 / 1000;

    fn new() -> Self {
        Self { samples: Self::CAP, refilled_at: None }
    }

    /// Takes `samples` if they are there.
    fn take(&mut self, now: Instant, samples: i64) -> bool {
        if let Some(at) = self.refilled_at {
            let earned =
                now.saturating_duration_since(at).as_micros().min(MAX_AHEAD.as_micros()) as i64 * i64::from(SAMPLE_RATE) / 1_000_000;
            self.samples = (self.samples + earned).min(Self::CAP);
        }
        self.refilled_at = Some(now);
        if samples > self.samples {
            return false;
        }
        self.samples -= samples;
        true
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TranscodeError {
    #[error("cannot set up the Opus decoder: {0}")]
    OpusInit(opus::Error),
    #[error("cannot set up the AAC encoder: {0}")]
    AacInit(String),
    #[error("AAC encoding failed: {0}")]
    AacEncode(String),
}

/// One encoded AAC frame, raw (no ADTS), as FLV wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacFrame {
    /// Position of the frame's first sample, in 48 kHz ticks of the track's extended RTP clock.
    pub rtp: i64,
    pub data: Bytes,
}

pub struct OpusToAac {
    decoder: opus::Decoder,
    encoder: Encoder,
    track: AacTrack,
    /// Interleaved samples per sample instant.
    channels: usize,
    encoder_delay: i64,
    /// Interleaved PCM not yet encoded.
    pcm: Vec<i16>,
    /// Position of `pcm[0]`.
    pcm_start: i64,
    /// Position right after the last decoded sample; `None` before the first packet.
    expected: Option<i64>,
    decoded: Vec<i16>,
    encoded: Vec<u8>,
    budget: RealTimeBudget,
    /// Packets dropped because they would have run ahead of real time.
    over_budget: u64,
}

impl std::fmt::Debug for OpusToAac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusToAac").field("pcm_start", &self.pcm_start).field("expected", &self.expected).finish_non_exhaustive()
    }
}

impl OpusToAac {
    /// AAC-LC in `format`.
    pub fn new(format: AudioFormat) -> Result<Self, TranscodeError> {
        let decoder = opus::Decoder::new(SAMPLE_RATE, format.channels.opus()).map_err(TranscodeError::OpusInit)?;
        let encoder = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(format.bitrate),
            sample_rate: SAMPLE_RATE,
            transport: Transport::Raw,
            channels: format.channels.fdk(),
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| TranscodeError::AacInit(e.to_string()))?;
        let info = encoder.info().map_err(|e| TranscodeError::AacInit(e.to_string()))?;
        let config_len = (info.confSize as usize).min(info.confBuf.len());
        let channels = usize::from(format.channels.count());
        Ok(Self {
            decoder,
            encoder,
            track: AacTrack { specific_config: Bytes::copy_from_slice(&info.confBuf[..config_len]), format },
            channels,
            encoder_delay: info.nDelay.into(),
            pcm: Vec::with_capacity(channels * (AAC_FRAME_SAMPLES + MAX_OPUS_SAMPLES)),
            pcm_start: 0,
            expected: None,
            decoded: vec![0; channels * MAX_OPUS_SAMPLES],
            encoded: vec![0; 8192],
            budget: RealTimeBudget::new(),
            over_budget: 0,
        })
    }

    /// What the FLV stream announces: the AudioSpecificConfig (ISO 14496-3) for its AAC
    /// sequence header, and the bitrate.
    pub fn track(&self) -> AacTrack {
        self.track.clone()
    }

    /// Packets dropped so far because they would have run ahead of real time.
    pub fn over_budget(&self) -> u64 {
        self.over_budget
    }

    /// Decodes one Opus packet at extended RTP position `rtp`, arrived at `now`, and encodes
    /// every whole AAC frame now available. A packet that fails to decode is treated as lost;
    /// one that would run ahead of real time is dropped.
    pub fn push(&mut self, now: Instant, rtp: i64, opus_packet: &[u8], out: &mut Vec<AacFrame>) -> Result<(), TranscodeError> {
        let gap = match self.expected {
            Some(expected) if rtp < expected => return Ok(()), // late or duplicate
            Some(expected) if rtp - expected <= MAX_CONCEALED_SAMPLES => Some(rtp - expected),
            _ => None,
        };
        let samples = opus::packet::get_nb_samples(opus_packet, SAMPLE_RATE).map_or(CONCEALMENT_STEP as i64, |n| n as i64);
        if !self.budget.take(now, samples + gap.unwrap_or(0)) {
            self.over_budget += 1;
            return Ok(());
        }
        match gap {
            Some(gap) => self.conceal(gap),
            None => {
                self.pcm.clear();
                self.pcm_start = rtp;
            }
        }
        let samples = match self.decoder.decode(opus_packet, &mut self.decoded, false) {
            Ok(samples) => samples,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable Opus packet, concealing");
                self.decoder.decode(&[], &mut self.decoded[..self.channels * CONCEALMENT_STEP], false).unwrap_or(0)
            }
        };
        self.pcm.extend_from_slice(&self.decoded[..samples * self.channels]);
        self.expected = Some(rtp + samples as i64);
        self.encode_ready(out)
    }

    /// Fills `samples` missing samples per channel with libopus' concealment.
    fn conceal(&mut self, mut samples: i64) {
        while samples > 0 {
            let step = (samples as usize).min(CONCEALMENT_STEP);
            let got = self.decoder.decode(&[], &mut self.decoded[..self.channels * step], false).unwrap_or(0);
            if got == 0 {
                self.pcm.resize(self.pcm.len() + self.channels * step, 0);
            } else {
                self.pcm.extend_from_slice(&self.decoded[..got * self.channels]);
            }
            samples -= step.max(got) as i64;
        }
    }

    fn encode_ready(&mut self, out: &mut Vec<AacFrame>) -> Result<(), TranscodeError> {
        let frame_len = self.channels * AAC_FRAME_SAMPLES;
        let mut consumed = 0;
        while self.pcm.len() - consumed >= frame_len {
            let input = &self.pcm[consumed..consumed + frame_len];
            let info = self.encoder.encode(input, &mut self.encoded).map_err(|e| TranscodeError::AacEncode(e.to_string()))?;
            let frame_start = self.pcm_start + (consumed / self.channels) as i64;
            consumed += frame_len;
            if info.output_size > 0 {
                out.push(AacFrame {
                    rtp: frame_start - self.encoder_delay,
                    data: Bytes::copy_from_slice(&self.encoded[..info.output_size]),
                });
            }
        }
        self.pcm.drain(..consumed);
        self.pcm_start += (consumed / self.channels) as i64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When packet `n` of a real-time 20 ms stream arrives.
    fn at(n: usize) -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now) + Duration::from_millis(20 * n as u64)
    }

    const STEREO: AudioFormat = AudioFormat { channels: Channels::Stereo, bitrate: 128_000 };

    /// 20 ms Opus packets of a 440 Hz tone in `channels`, made by libopus itself.
    fn tone_packets_in(channels: Channels, count: usize) -> Vec<Vec<u8>> {
        let mut enc = opus::Encoder::new(SAMPLE_RATE, channels.opus(), opus::Application::Audio).expect("encoder");
        (0..count)
            .map(|n| {
                let pcm: Vec<i16> = (0..960)
                    .flat_map(|i| {
                        let t = (n * 960 + i) as f64 / f64::from(SAMPLE_RATE);
                        let s = ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16;
                        std::iter::repeat_n(s, channels.count().into())
                    })
                    .collect();
                enc.encode_vec(&pcm, 4000).expect("encode")
            })
            .collect()
    }

    fn tone_packets(count: usize) -> Vec<Vec<u8>> {
        tone_packets_in(Channels::Stereo, count)
    }

    #[test]
    fn audio_specific_config_says_aac_lc_48k_and_the_channels() {
        // Object type 2 (LC), frequency index 3 (48 kHz), channel configuration 2 or 1.
        let stereo = OpusToAac::new(STEREO).expect("transcoder");
        assert_eq!(&stereo.track().specific_config[..2], &[0x11, 0x90]);
        let mono = OpusToAac::new(AudioFormat::new(Channels::Mono, 128_000)).expect("transcoder");
        assert_eq!(&mono.track().specific_config[..2], &[0x11, 0x88]);
        assert_eq!(mono.track().format.bitrate, 64_000);
    }

    #[test]
    fn either_track_takes_mono_and_stereo_packets_at_the_same_pace() {
        // Opus may switch channels per packet, whatever the offer said.
        for channels in [Channels::Mono, Channels::Stereo] {
            let mut t = OpusToAac::new(AudioFormat::new(channels, 32_000)).expect("the lowest bitrate the relay takes");
            let mut out = Vec::new();
            let packets = tone_packets_in(Channels::Mono, 25).into_iter().chain(tone_packets_in(Channels::Stereo, 25));
            for (n, packet) in packets.enumerate() {
                t.push(at(n), n as i64 * 960, &packet, &mut out).expect("push");
            }
            assert!((44..=47).contains(&out.len()), "{channels:?}: {} frames", out.len());
            assert!(out.windows(2).all(|pair| pair[1].rtp - pair[0].rtp == AAC_FRAME_SAMPLES as i64));
        }
    }

    #[test]
    fn one_second_of_opus_becomes_about_47_aac_frames_spaced_1024_apart() {
        let mut t = OpusToAac::new(STEREO).expect("transcoder");
        let mut out = Vec::new();
        for (n, packet) in tone_packets(50).iter().enumerate() {
            t.push(at(n), 1000 + n as i64 * 960, packet, &mut out).expect("push");
        }
        assert!((44..=47).contains(&out.len()), "{} frames", out.len());
        for pair in out.windows(2) {
            assert_eq!(pair[1].rtp - pair[0].rtp, AAC_FRAME_SAMPLES as i64);
        }
        assert!(out.iter().all(|f| !f.data.is_empty()));
    }

    #[test]
    fn a_frame_is_made_three_or_four_packets_after_the_one_holding_its_first_sample() {
        // The floor of the audio latency the relay reports: a frame's first sample (its stamp)
        // lies the encoder's delay (2048 samples) before the 1024 it is made from, so the 20 ms
        // packet that completes it comes 3072 samples, 60-80 ms, after the one that holds it.
        let mut t = OpusToAac::new(AudioFormat::new(Channels::Mono, 128_000)).expect("transcoder");
        assert_eq!(t.encoder_delay, 2048);
        let mut packets_after = Vec::new();
        for (n, packet) in tone_packets_in(Channels::Mono, 100).iter().enumerate() {
            let mut out = Vec::new();
            t.push(at(n), n as i64 * 960, packet, &mut out).expect("push");
            packets_after.extend(out.iter().filter(|f| f.rtp >= 0).map(|f| n as i64 - f.rtp / 960));
        }
        assert!(packets_after.len() > 80, "{} frames", packets_after.len());
        assert!(packets_after.iter().all(|&p| p == 3 || p == 4), "{packets_after:?}");
        let mean_ms = packets_after.iter().sum::<i64>() as f64 * 20.0 / packets_after.len() as f64;
        assert!((62.0..66.0).contains(&mean_ms), "{mean_ms} ms");
    }

    #[test]
    fn a_lost_packet_is_concealed_and_the_timeline_keeps_its_pace() {
        let packets = tone_packets(30);
        let mut t = OpusToAac::new(STEREO).expect("transcoder");
        let mut out = Vec::new();
        for (n, packet) in packets.iter().enumerate().filter(|(n, _)| *n != 10) {
            t.push(at(n), n as i64 * 960, packet, &mut out).expect("push");
        }
        let span = out.last().map(|f| f.rtp).unwrap_or(0) - out[0].rtp;
        assert_eq!(span, (out.len() as i64 - 1) * AAC_FRAME_SAMPLES as i64);
        assert!(out.len() >= 25, "{} frames", out.len());
    }

    #[test]
    fn garbage_and_late_packets_do_not_break_it() {
        let mut t = OpusToAac::new(STEREO).expect("transcoder");
        let mut out = Vec::new();
        t.push(at(0), 0, &[0xff, 0xff, 0xff], &mut out).expect("garbage is concealed");
        t.push(at(1), 960, &tone_packets(1)[0], &mut out).expect("push");
        t.push(at(2), 0, &tone_packets(1)[0], &mut out).expect("late is ignored");
    }

    #[test]
    fn timestamp_jumps_and_long_packets_cannot_buy_more_than_real_time() {
        // A 2-byte Opus packet that decodes to 120 ms (TOC: 60 ms SILK frames, code 1: two of them),
        // sent every millisecond with a timestamp 100 ms further each time.
        let long = [0b0001_1001u8, 0];
        assert_eq!(opus::packet::get_nb_samples(&long, SAMPLE_RATE).expect("valid"), 5760);
        let mut t = OpusToAac::new(STEREO).expect("transcoder");
        let mut out = Vec::new();
        let t0 = Instant::now();
        for n in 0..1000i64 {
            t.push(t0 + Duration::from_millis(n as u64), n * (5760 + 4800), &long, &mut out).expect("push");
        }
        // One second of wall time: at most a second of audio plus the half-second head start.
        let produced = out.len() as i64 * AAC_FRAME_SAMPLES as i64;
        assert!(produced <= i64::from(SAMPLE_RATE) * 3 / 2 + AAC_FRAME_SAMPLES as i64, "{} AAC frames", out.len());
        assert!(t.over_budget() > 900, "{} dropped", t.over_budget());
    }
}
