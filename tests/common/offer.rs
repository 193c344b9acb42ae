//! Real SDP offers, made by the `webrtc` crate as a publisher would (H.264 + Opus, sendonly,
//! loopback candidates), for tests that need the relay to answer but never to connect.

use webrtc::api::APIBuilder;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::network_type::NetworkType;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

/// An H.264 + Opus publisher's offer with its gathered (loopback) candidates. The peer
/// connection that made it is closed: nothing will ever answer the relay's checks.
pub async fn h264_offer() -> String {
    let mut engine = MediaEngine::default();
    engine.register_default_codecs().expect("codecs");
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    let api = APIBuilder::new().with_media_engine(engine).with_setting_engine(settings).build();
    let pc = api.new_peer_connection(RTCConfiguration::default()).await.expect("peer connection");
    for kind in [RTPCodecType::Video, RTPCodecType::Audio] {
        let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, send_encodings: vec![] };
        pc.add_transceiver_from_kind(kind, Some(init)).await.expect("transceiver");
    }
    let offer = pc.create_offer(None).await.expect("offer");
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await.expect("local description");
    let _ = gathered.recv().await;
    let sdp = pc.local_description().await.expect("local description").sdp;
    let _ = pc.close().await;
    sdp
}

/// `offer` with its candidates replaced by one host candidate per address.
pub fn with_candidates(offer: &str, addresses: &[std::net::SocketAddr]) -> String {
    let mut out = String::new();
    let mut added = false;
    for line in offer.split_inclusive('\n') {
        if line.starts_with("a=candidate:") {
            if !added {
                for (i, addr) in addresses.iter().enumerate() {
                    out.push_str(&format!("a=candidate:{i} 1 udp {} {} {} typ host\r\n", 2_130_706_431 - i, addr.ip(), addr.port()));
                }
                added = true;
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

/// One whole session as a publisher makes it (video and audio tracks), without media: offer, POST, answer, ICE and
/// DTLS up, then DELETE. Returns once the relay has answered the DELETE.
pub async fn connect_and_delete(url: &str) -> Result<(), String> {
    use std::sync::Arc;
    use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
    use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
    use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
    use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
    use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

    ivs_relay::server::install_crypto_provider(); // DTLS; the build has two rustls providers
    let mut engine = MediaEngine::default();
    engine.register_default_codecs().map_err(|e| e.to_string())?;
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    let api = APIBuilder::new().with_media_engine(engine).with_setting_engine(settings).build();
    let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await.map_err(|e| e.to_string())?);
    let track = Arc::new(TrackLocalStaticSample::new(
        RTCRtpCodecCapability { mime_type: MIME_TYPE_H264.to_owned(), clock_rate: 90_000, ..Default::default() },
        "video".to_owned(),
        "churn".to_owned(),
    ));
    pc.add_track(track).await.map_err(|e| e.to_string())?;
    // With audio, so that each session also starts (and must end) its audio thread.
    let audio = Arc::new(TrackLocalStaticSample::new(
        RTCRtpCodecCapability { mime_type: MIME_TYPE_OPUS.to_owned(), clock_rate: 48_000, channels: 2, ..Default::default() },
        "audio".to_owned(),
        "churn".to_owned(),
    ));
    pc.add_track(audio).await.map_err(|e| e.to_string())?;
    let (connected_tx, mut connected) = tokio::sync::watch::channel(RTCPeerConnectionState::New);
    pc.on_peer_connection_state_change(Box::new(move |state| {
        let _ = connected_tx.send(state);
        Box::pin(async {})
    }));
    let result = async {
        let offer = pc.create_offer(None).await.map_err(|e| e.to_string())?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await.map_err(|e| e.to_string())?;
        let _ = gathered.recv().await;
        let offer = pc.local_description().await.ok_or("no local description")?.sdp;
        let http = reqwest::Client::new();
        let response = http.post(url).header("content-type", "application/sdp").body(offer).send().await.map_err(|e| e.to_string())?;
        if response.status() != reqwest::StatusCode::CREATED {
            return Err(format!("POST answered {}", response.status()));
        }
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).ok_or("no Location")?.to_owned();
        let answer = response.text().await.map_err(|e| e.to_string())?;
        pc.set_remote_description(RTCSessionDescription::answer(answer).map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
        tokio::time::timeout(std::time::Duration::from_secs(10), connected.wait_for(|s| *s == RTCPeerConnectionState::Connected))
            .await
            .map_err(|_| "not connected within 10 s".to_owned())?
            .map_err(|e| e.to_string())?;
        let session = reqwest::Url::parse(url).map_err(|e| e.to_string())?.join(&location).map_err(|e| e.to_string())?;
        let deleted = http.delete(session).send().await.map_err(|e| e.to_string())?;
        if deleted.status() != reqwest::StatusCode::OK {
            return Err(format!("DELETE answered {}", deleted.status()));
        }
        Ok(())
    }
    .await;
    let _ = pc.close().await;
    result
}
