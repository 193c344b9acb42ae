//! The floor of today's stack: `webrtc` 0.17 set up as `ivs-relay` sets it up (one UDP port
//! through its mux, NACK + RTCP reports + TWCC, a reader task per track and per receiver, the
//! packet read into one reused buffer), and nothing done with the media.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType};
use webrtc_floor::{Counters, Engine};

struct Floor017 {
    api: API,
    counters: Arc<Counters>,
    sessions: Mutex<HashMap<u64, Arc<RTCPeerConnection>>>,
    next: AtomicU64,
}

fn api(udp: std::net::SocketAddr) -> anyhow::Result<API> {
    let mut engine = MediaEngine::default();
    for (payload_type, profile) in [(102, "42e01f"), (108, "42001f"), (127, "4d001f"), (123, "640032")] {
        let capability = RTCRtpCodecCapability {
            mime_type: MIME_TYPE_H264.to_owned(),
            clock_rate: 90_000,
            sdp_fmtp_line: format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"),
            ..Default::default()
        };
        engine.register_codec(RTCRtpCodecParameters { capability, payload_type, ..Default::default() }, RTPCodecType::Video)?;
    }
    let opus = RTCRtpCodecCapability { mime_type: MIME_TYPE_OPUS.to_owned(), clock_rate: 48_000, channels: 2, ..Default::default() };
    engine.register_codec(RTCRtpCodecParameters { capability: opus, payload_type: 111, ..Default::default() }, RTPCodecType::Audio)?;
    let registry = register_default_interceptors(Registry::new(), &mut engine)?;
    let socket = std::net::UdpSocket::bind(udp).with_context(|| format!("bind {udp}"))?;
    socket.set_nonblocking(true)?;
    let mux = UDPMuxDefault::new(UDPMuxParams::new(tokio::net::UdpSocket::from_std(socket)?));
    let mut settings = SettingEngine::default();
    settings.set_udp_network(UDPNetwork::Muxed(mux));
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_nat_1to1_ips(vec![udp.ip().to_string()], RTCIceCandidateType::Host);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    Ok(APIBuilder::new().with_media_engine(engine).with_interceptor_registry(registry).with_setting_engine(settings).build())
}

impl Engine for Floor017 {
    async fn answer(&self, offer: String) -> anyhow::Result<(String, u64)> {
        let pc = Arc::new(self.api.new_peer_connection(RTCConfiguration::default()).await?);
        let counters = self.counters.clone();
        pc.on_track(Box::new(move |track, receiver, _| {
            let counters = counters.clone();
            tokio::spawn(async move { while receiver.read_rtcp().await.is_ok() {} });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1500];
                while let Ok((packet, _)) = track.read(&mut buf).await {
                    counters.received(packet.payload.len());
                }
            });
            Box::pin(async {})
        }));
        let counters = self.counters.clone();
        // Counted once while connected: `Failed` is followed by `Closed`, and a session may
        // close without ever connecting.
        let connected = AtomicBool::new(false);
        pc.on_peer_connection_state_change(Box::new(move |state| {
            match state {
                RTCPeerConnectionState::Connected if !connected.swap(true, Ordering::Relaxed) => {
                    counters.live.fetch_add(1, Ordering::Relaxed);
                }
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed if connected.swap(false, Ordering::Relaxed) => {
                    counters.live.fetch_sub(1, Ordering::Relaxed);
                }
                _ => {}
            }
            Box::pin(async {})
        }));
        pc.set_remote_description(RTCSessionDescription::offer(offer)?).await?;
        let answer = pc.create_answer(None).await?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(answer).await?;
        let _ = gathered.recv().await;
        let answer = pc.local_description().await.context("no local description")?.sdp;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.sessions.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(id, pc);
        Ok((answer, id))
    }

    fn close(&self, session: u64) {
        if let Some(pc) = self.sessions.lock().ok().and_then(|mut s| s.remove(&session)) {
            tokio::spawn(async move { pc.close().await });
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ports = webrtc_floor::ports()?;
    let counters = Arc::new(Counters::default());
    let engine = Floor017 { api: api(ports.udp)?, counters: counters.clone(), sessions: Mutex::default(), next: AtomicU64::new(1) };
    webrtc_floor::serve(ports.http, engine, counters).await
}
