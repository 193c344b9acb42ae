//! Answering an offer: one sans-IO `rtc` peer connection per session, set up with the codecs we
//! accept (H.264 packetization-mode 1 and Opus, no RTX so retransmissions arrive on the media
//! SSRC), NACK, RTCP receiver reports and transport-wide congestion control feedback (without which
//! browsers stay near 300 kbit/s), the publisher's sender reports passed through, short ICE
//! timeouts so that a vanished browser frees its session within seconds, and the relay's one
//! UDP address as its only candidates. No I/O happens here: `transport` moves the datagrams.

mod sender_reports;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::interceptor::{NackGeneratorBuilder, ReceiverReportBuilder, Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{configure_simulcast_extension_headers, configure_twcc_receiver_only};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::PayloadType;
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use thiserror::Error;

/// ICE gives up on a silent peer after `DISCONNECTED` + `FAILED`.
const ICE_DISCONNECTED: Duration = Duration::from_secs(3);
const ICE_FAILED: Duration = Duration::from_secs(4);
const ICE_KEEPALIVE: Duration = Duration::from_secs(1);

/// How often missing video packets are asked for again (RTCP NACK) while the media core waits
/// for them (300 ms): a retransmission lost too is asked for again within this, several times.
const NACK_INTERVAL: Duration = Duration::from_millis(40);

/// H.264 profiles we answer, all packetization-mode 1: what browsers and OBS offer.
const H264_PROFILES: [(PayloadType, &str); 4] = [(102, "42e01f"), (108, "42001f"), (127, "4d001f"), (123, "640032")];

/// The offer was well-formed SDP (`offer::check` said so) but WebRTC could not answer it.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct NegotiationError(String);

impl NegotiationError {
    pub fn new(reason: impl std::fmt::Display) -> Self {
        Self(reason.to_string())
    }
}

impl From<rtc::shared::error::Error> for NegotiationError {
    fn from(e: rtc::shared::error::Error) -> Self {
        Self(e.to_string())
    }
}

/// A peer connection that has answered its offer, not yet connected.
pub struct Answered {
    pub pc: RTCPeerConnection,
    pub sdp: String,
    /// Our ICE username fragment: the first half of the USERNAME in every check the publisher
    /// sends, which is how its first datagram finds this connection.
    pub ufrag: String,
}

fn codecs() -> Result<MediaEngine, NegotiationError> {
    let mut engine = MediaEngine::default();
    let fir = RTCPFeedback { typ: "ccm".to_owned(), parameter: "fir".to_owned() };
    for (payload_type, profile) in H264_PROFILES {
        let rtp_codec = RTCRtpCodec {
            mime_type: MIME_TYPE_H264.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"),
            rtcp_feedback: vec![fir.clone()],
        };
        engine.register_codec(RTCRtpCodecParameters { rtp_codec, payload_type }, RtpCodecKind::Video)?;
    }
    let rtp_codec = RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    };
    engine.register_codec(RTCRtpCodecParameters { rtp_codec, payload_type: 111 }, RtpCodecKind::Audio)?;
    Ok(engine)
}

/// What runs between the wire and the session: NACKs for lost video, RTCP receiver reports,
/// TWCC feedback, the publisher's sender reports passed on. The relay sends no media, so there
/// is no NACK responder and no sender-report interceptor: each would be one more pass over every
/// packet that does nothing.
fn interceptors(engine: &mut MediaEngine) -> Result<Registry, NegotiationError> {
    for parameter in ["", "pli"] {
        engine.register_feedback(RTCPFeedback { typ: "nack".to_owned(), parameter: parameter.to_owned() }, RtpCodecKind::Video);
    }
    configure_simulcast_extension_headers(engine)?;
    let registry = Registry::new().with(Slot::NackGenerator, NackGeneratorBuilder::new().with_interval(NACK_INTERVAL).build());
    Ok(configure_twcc_receiver_only(registry, engine)?
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        .with(Slot::from(sender_reports::SLOT), sender_reports::SenderReportsToApplication::default()))
}

/// The host candidate for one address the relay's UDP socket is reached at.
fn host_candidate(address: SocketAddr) -> Result<rtc::peer_connection::transport::RTCIceCandidateInit, NegotiationError> {
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: address.ip().to_string(),
            port: address.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    Ok(RTCIceCandidate::from(&host).to_json()?)
}

/// Answers `offer` (already checked and its candidates filtered), advertising `candidates`:
/// where the publisher's checks reach the relay's socket. Costs a DTLS certificate (a few ms of
/// CPU): callers run it off the media thread.
pub fn answer(offer: String, candidates: &[SocketAddr]) -> Result<Answered, NegotiationError> {
    let mut engine = codecs()?;
    let registry = interceptors(&mut engine)?;
    // Offers say `actpass` (RFC 8842 §5.2 requires it): as the DTLS server the relay lets the
    // publisher's ClientHello follow its first successful check at once, instead of sending
    // one itself once ICE settles.
    let settings = SettingEngineBuilder::new()
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .with_ice_timeouts(Some(ICE_DISCONNECTED), Some(ICE_FAILED), Some(ICE_KEEPALIVE))
        .build();
    let now = Instant::now();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .build(now)?;
    pc.set_remote_description(now, RTCSessionDescription::offer(offer)?)?;
    for &address in candidates {
        pc.add_local_candidate(host_candidate(address)?)?;
    }
    let answer = pc.create_answer(None)?;
    pc.set_local_description(now, answer.clone())?;
    let ufrag = answer
        .sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
        .ok_or_else(|| NegotiationError("the answer has no ICE username fragment".to_owned()))?;
    Ok(Answered { pc, sdp: answer.sdp, ufrag })
}
