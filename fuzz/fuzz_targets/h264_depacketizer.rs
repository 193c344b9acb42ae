//! RTP H.264 payloads (single NAL, STAP-A, FU-A and anything else) through the depacketizer
//! and the track's keyframe and parameter-set logic.
#![no_main]

use ivs_relay::media::h264::{H264Track, depacketize};
use ivs_relay::media::rtp::RtpPacket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payloads: Vec<Vec<u8>>| {
    let packets: Vec<RtpPacket> = payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| RtpPacket { sequence_number: i as u16, timestamp: 0, marker: false, payload: payload.into() })
        .collect();
    let mut nalus = Vec::new();
    let _ = depacketize(&packets, &mut nalus);
    let mut track = H264Track::new();
    let mut out = Vec::new();
    track.push_frame(&packets, &mut out);
    track.push_frame(&packets, &mut out);
});
