//! An interceptor that lets the publisher's RTCP sender reports reach the session. The chain's
//! terminus keeps inbound RTCP to the interceptors unless one marks it for the application;
//! the media core needs each track's reports (NTP time ↔ RTP time) to put audio and video on
//! one timeline. The receiver-report interceptor before it has already taken what it needs.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Where it sits in the chain: after the receiver-report interceptor (which learns from the
/// same reports) and the jitter buffer, nearest the application.
pub const SLOT: usize = 14_000;

#[derive(Default)]
pub struct SenderReportsToApplication {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

fn holds_sender_report(packet: &Packet) -> bool {
    matches!(packet, Packet::Rtcp(packets) if packets.iter().any(|p| p.as_any().downcast_ref::<SenderReport>().is_some()))
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for SenderReportsToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if holds_sender_report(&msg.message.packet) && !msg.message.has(&Attribute::DeliverToApplication) {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for SenderReportsToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
