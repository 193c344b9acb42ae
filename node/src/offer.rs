//! Checks a WHIP offer before any WebRTC state is made for it: it must parse, carry video with
//! H.264, and, if it has audio, Opus. The reason for a refusal is one line for the client.

use std::io::Cursor;

use rtc::sdp::SessionDescription;
use thiserror::Error;

/// Largest offer accepted (bytes): real offers are 2–10 KiB.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OfferError {
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    #[error("the offer has no video track")]
    NoVideo,
    #[error("the offer's video has no H.264 (this relay does not re-encode; prefer H.264 with setCodecPreferences)")]
    NoH264,
    #[error("the offer's audio has no Opus")]
    NoOpus,
    #[error("the offer must send media (direction sendonly or sendrecv)")]
    NotSending,
}

impl OfferError {
    /// 400 for an offer that is broken, 406 for one that is fine but asks for what we lack.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Self::NoH264 | Self::NoOpus)
    }
}

/// What a valid offer publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferSummary {
    pub has_audio: bool,
}

pub fn check(sdp: &str) -> Result<OfferSummary, OfferError> {
    let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())).map_err(|e| OfferError::Malformed(e.to_string()))?;
    let has_codec = |kind: &str, codec: &str| {
        desc.media_descriptions.iter().filter(|m| m.media_name.media == kind && m.media_name.port.value != 0).any(|m| {
            m.attributes
                .iter()
                .any(|a| a.key == "rtpmap" && a.value.as_deref().is_some_and(|v| v.to_ascii_lowercase().contains(&format!(" {codec}/"))))
        })
    };
    let has_kind = |kind: &str| desc.media_descriptions.iter().any(|m| m.media_name.media == kind && m.media_name.port.value != 0);
    if !has_kind("video") {
        return Err(OfferError::NoVideo);
    }
    if !has_codec("video", "h264") {
        return Err(OfferError::NoH264);
    }
    let has_audio = has_kind("audio");
    if has_audio && !has_codec("audio", "opus") {
        return Err(OfferError::NoOpus);
    }
    let receives_only = desc.media_descriptions.iter().all(|m| m.attributes.iter().any(|a| a.key == "recvonly" || a.key == "inactive"));
    if receives_only {
        return Err(OfferError::NotSending);
    }
    Ok(OfferSummary { has_audio })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

    fn offer(media: &str) -> String {
        format!("{HEAD}{media}")
    }

    const VIDEO_H264: &str = "m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=sendonly\r\na=rtpmap:102 H264/90000\r\n";
    const VIDEO_VP8: &str = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";
    const AUDIO_OPUS: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n";
    const AUDIO_PCMU: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn h264_and_opus_is_accepted() {
        assert_eq!(check(&offer(&format!("{AUDIO_OPUS}{VIDEO_H264}"))), Ok(OfferSummary { has_audio: true }));
        assert_eq!(check(&offer(VIDEO_H264)), Ok(OfferSummary { has_audio: false }));
    }

    #[test]
    fn refusals_name_what_is_missing() {
        assert_eq!(check(&offer(AUDIO_OPUS)), Err(OfferError::NoVideo));
        assert_eq!(check(&offer(VIDEO_VP8)), Err(OfferError::NoH264));
        assert_eq!(check(&offer(&format!("{VIDEO_H264}{AUDIO_PCMU}"))), Err(OfferError::NoOpus));
        assert!(OfferError::NoH264.is_unsupported());
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in ["", "hello", "v=0\r\nm=video\r\n", "\u{0}\u{1}\u{2}"] {
            assert!(matches!(check(garbage), Err(OfferError::Malformed(_) | OfferError::NoVideo)), "{garbage:?}");
        }
    }
}
