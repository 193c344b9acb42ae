//! Frame assembly from arbitrary packets, waits and polls: no panic, and every frame it emits
//! is in sequence order with one timestamp.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use ivs_relay::media::frames::{Assembled, FrameAssembler};
use ivs_relay::media::rtp::RtpPacket;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Step {
    Packet { seq: u16, ts: u32, marker: bool, payload: Vec<u8> },
    Poll { after_ms: u16 },
}

fuzz_target!(|steps: Vec<Step>| {
    let mut assembler = FrameAssembler::new(Duration::from_millis(300), 64);
    let mut now = Instant::now();
    for step in steps {
        let out = match step {
            Step::Packet { seq, ts, marker, payload } => {
                assembler.push(now, RtpPacket { sequence_number: seq, timestamp: ts, marker, payload: payload.into() })
            }
            Step::Poll { after_ms } => {
                now += Duration::from_millis(after_ms.into());
                assembler.poll(now)
            }
        };
        for item in out {
            if let Assembled::Frame(packets) = item {
                assert!(!packets.is_empty());
                assert!(packets.windows(2).all(|w| w[1].sequence_number == w[0].sequence_number.wrapping_add(1)));
                assert!(packets.iter().all(|p| p.timestamp == packets[0].timestamp));
            }
        }
    }
});
