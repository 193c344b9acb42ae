//! The `webrtc` crate's set-up, once per relay: the codecs we accept (H.264 packetization-mode 1
//! and Opus, no RTX so retransmissions arrive on the media SSRC), NACK, RTCP reports and
//! transport-wide congestion control feedback (without which browsers stay near 300 kbit/s),
//! all ICE on one UDP port, the public address as a 1:1 NAT host candidate, and short ICE
//! timeouts so that a vanished browser frees its session within seconds.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::interceptor::registry::Registry;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType};
use webrtc::rtp_transceiver::{PayloadType, RTCPFeedback};

use crate::dns::Dns;

/// ICE gives up on a silent peer after `DISCONNECTED` + `FAILED`.
const ICE_DISCONNECTED: Duration = Duration::from_secs(3);
const ICE_FAILED: Duration = Duration::from_secs(4);
const ICE_KEEPALIVE: Duration = Duration::from_secs(1);

/// H.264 profiles we answer, all packetization-mode 1: what browsers and OBS offer.
const H264_PROFILES: [(PayloadType, &str); 4] = [(102, "42e01f"), (108, "42001f"), (127, "4d001f"), (123, "640032")];

fn codecs() -> anyhow::Result<MediaEngine> {
    let mut engine = MediaEngine::default();
    let feedback = vec![RTCPFeedback { typ: "ccm".to_owned(), parameter: "fir".to_owned() }];
    for (payload_type, profile) in H264_PROFILES {
        engine.register_codec(
            RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_H264.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"),
                    rtcp_feedback: feedback.clone(),
                },
                payload_type,
                ..Default::default()
            },
            RTPCodecType::Video,
        )?;
    }
    engine.register_codec(
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: 111,
            ..Default::default()
        },
        RTPCodecType::Audio,
    )?;
    Ok(engine)
}

/// Where ICE listens and what it advertises.
#[derive(Debug, Clone)]
pub struct IceSettings {
    /// The UDP socket all sessions share.
    pub bind: SocketAddr,
    /// Advertised instead of local addresses (1:1 NAT), e.g. the task's public IP.
    pub public_ip: Option<IpAddr>,
    /// Only loopback candidates: `ivsctl local` on 127.0.0.1.
    pub loopback_only: bool,
}

/// What the media socket's kernel receive buffer is asked to hold: every session's packets
/// arrive on this one socket, and one 720p keyframe is 100-200 kB arriving at once (fast links
/// deliver it unpaced), while Linux's default of 208 KiB holds one or two. Each loss costs a NACK
/// and a retransmission, or a PLI and a new keyframe, which load the socket further.
const MEDIA_RECEIVE_BUFFER: usize = 8 << 20;

/// The one UDP socket all WebRTC media uses, with a receive buffer sized for many sessions.
fn media_socket(bind: SocketAddr) -> anyhow::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // The kernel caps the size at net.core.rmem_max; what it granted is logged.
    if let Err(e) = socket.set_recv_buffer_size(MEDIA_RECEIVE_BUFFER) {
        tracing::warn!(error = %e, "cannot size the media socket's receive buffer");
    }
    // Linux books twice the size granted (half for its own overhead) and reports that.
    let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    if granted < MEDIA_RECEIVE_BUFFER {
        tracing::info!(
            bytes = granted,
            wanted = MEDIA_RECEIVE_BUFFER,
            "media socket receive buffer capped by net.core.rmem_max: raise it for many sessions"
        );
    } else {
        tracing::info!(bytes = granted, "media socket receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into()).with_context(|| format!("cannot bind WebRTC UDP port {bind}"))?;
    Ok(tokio::net::UdpSocket::from_std(socket.into())?)
}

/// Builds the relay's one WebRTC API object, with its UDP port bound.
pub async fn build_api(ice: &IceSettings) -> anyhow::Result<API> {
    let mut engine = codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut engine)?;

    let socket = media_socket(ice.bind)?;
    let mux = UDPMuxDefault::new(UDPMuxParams::new(socket));

    let mut settings = SettingEngine::default();
    settings.set_udp_network(UDPNetwork::Muxed(mux));
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_timeouts(Some(ICE_DISCONNECTED), Some(ICE_FAILED), Some(ICE_KEEPALIVE));
    // Browsers' `.local` candidates would need multicast queries; the browser's own checks
    // reach us anyway, and we learn its address from them.
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    // On loopback the only interface address is 127.0.0.1, whatever loopback address the
    // socket is bound to: advertise the bound one, or checks go where nothing listens.
    let advertised = ice.public_ip.or_else(|| ice.loopback_only.then(|| ice.bind.ip()));
    if let Some(ip) = advertised {
        settings.set_nat_1to1_ips(vec![ip.to_string()], RTCIceCandidateType::Host);
    }
    if ice.loopback_only {
        settings.set_include_loopback_candidate(true);
        settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    } else if !ice.bind.ip().is_unspecified() {
        let only = ice.bind.ip();
        settings.set_ip_filter(Box::new(move |ip: IpAddr| ip == only));
    }

    Ok(APIBuilder::new().with_media_engine(engine).with_interceptor_registry(registry).with_setting_engine(settings).build())
}

/// How many times the whole list of STUN servers is tried before the relay gives up starting:
/// without its public address no browser can reach it.
const STUN_ROUNDS: u32 = 3;

/// Asks the STUN servers, in turn, which address our UDP traffic comes from (for --stun); one
/// server down (or blocked) only costs the time to try the next.
pub async fn discover_public_ip(dns: &Dns, servers: &[String]) -> anyhow::Result<IpAddr> {
    let mut failures = Vec::new();
    for round in 1..=STUN_ROUNDS {
        for server in servers {
            match ask_stun(dns, server).await {
                Ok(ip) => {
                    tracing::info!(%ip, server, "public address discovered by STUN");
                    return Ok(ip);
                }
                Err(e) => {
                    tracing::warn!(server, round, error = format!("{e:#}"), "STUN server failed; trying the next");
                    failures.push(format!("{e:#}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(u64::from(round))).await;
    }
    failures.dedup();
    anyhow::bail!("no STUN server told the public address after {STUN_ROUNDS} rounds: {}", failures.join("; "))
}

/// One STUN binding request, sent up to three times.
async fn ask_stun(dns: &Dns, stun_server: &str) -> anyhow::Result<IpAddr> {
    use webrtc::stun::agent::TransactionId;
    use webrtc::stun::message::{BINDING_REQUEST, Getter, Message};
    use webrtc::stun::xoraddr::XorMappedAddress;

    let (host, port) = stun_server.rsplit_once(':').with_context(|| format!("STUN server {stun_server:?} is not HOST:PORT"))?;
    let port = port.parse().with_context(|| format!("STUN server {stun_server:?} has no valid port"))?;
    let server = dns
        .resolve(host, port)
        .await
        .with_context(|| format!("cannot resolve STUN server {stun_server}"))?
        .into_iter()
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("STUN server {stun_server} has no IPv4 address"))?;
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
    let mut request = Message::new();
    request.build(&[Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)])?;
    let mut buf = vec![0u8; 1500];
    for _attempt in 0..3 {
        socket.send_to(&request.raw, server).await?;
        let Ok(received) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await else { continue };
        let (n, _) = received?;
        let mut response = Message::new();
        response.raw = buf[..n].to_vec();
        response.decode()?;
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&response)?;
        return Ok(mapped.ip);
    }
    anyhow::bail!("STUN server {stun_server} did not answer in 6 s")
}
