//! The whole media core driven by arbitrary sequences of inputs and times: it must never
//! panic, and its FLV timestamps never go backwards within a track. Its Opus packets are
//! transcoded inline, as a session's audio thread would.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use ivs_relay::media::aac::{AudioFormat, Channels, OpusToAac};
use ivs_relay::media::clock::Track;
use ivs_relay::media::rtp::RtpPacket;
use ivs_relay::media::{CoreConfig, Input, MediaCore, Output, TagKind};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Step {
    Video { seq: u16, ts: u32, marker: bool, payload: Vec<u8> },
    Audio { seq: u16, ts: u32, payload: Vec<u8> },
    SenderReport { video: bool, ntp: u64, rtp: u32 },
    Tick,
    Wait { ms: u16 },
}

fuzz_target!(|steps: Vec<Step>| {
    let Ok(mut transcoder) = OpusToAac::new(AudioFormat::new(Channels::Stereo, 128_000)) else { return };
    let mut core = MediaCore::new(CoreConfig { audio: Some(transcoder.track()), ..CoreConfig::default() });
    let mut frames = Vec::new();
    let mut now = Instant::now();
    let (mut last_video, mut last_audio) = (0u32, 0u32);
    for step in steps {
        match step {
            Step::Video { seq, ts, marker, payload } => {
                let packet = RtpPacket { sequence_number: seq, timestamp: ts, marker, payload: payload.into() };
                core.handle_input(now, Input::Video(&packet));
            }
            Step::Audio { seq, ts, payload } => {
                let packet = RtpPacket { sequence_number: seq, timestamp: ts, marker: false, payload: payload.into() };
                core.handle_input(now, Input::Audio(&packet));
            }
            Step::SenderReport { video, ntp, rtp } => {
                let track = if video { Track::Video } else { Track::Audio };
                core.handle_input(now, Input::SenderReport { track, ntp, rtp });
            }
            Step::Tick => core.handle_input(now, Input::Tick),
            Step::Wait { ms } => now += Duration::from_millis(ms.into()),
        }
        while let Some(output) = core.poll_output() {
            if let Output::Transcode(packet) = output {
                let _ = transcoder.push(packet.arrived, packet.rtp, &packet.payload, &mut frames);
                core.handle_input(packet.arrived, Input::Aac(&frames));
                frames.clear();
            } else if let Output::Tag(tag) = output {
                let last = match tag.kind {
                    TagKind::Video => &mut last_video,
                    TagKind::Audio => &mut last_audio,
                    TagKind::Metadata => continue,
                };
                assert!(tag.timestamp_ms >= *last, "{:?} went back from {} to {}", tag.kind, last, tag.timestamp_ms);
                *last = tag.timestamp_ms;
            }
        }
    }
});
