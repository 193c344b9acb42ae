//! Checks a WHIP offer before any WebRTC state is made for it: it must parse, carry video with
//! H.264, and, if it has audio, Opus. The reason for a refusal is one line for the client.

use std::io::Cursor;

use rtc::sdp::SessionDescription;
use rtc::sdp::description::media::MediaDescription;
use thiserror::Error;

use crate::media::aac::Channels;

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
    /// The audio's channels, if it sends audio.
    pub audio: Option<Channels>,
}

pub fn check(sdp: &str) -> Result<OfferSummary, OfferError> {
    let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())).map_err(|e| OfferError::Malformed(e.to_string()))?;
    let active =
        |kind: &'static str| desc.media_descriptions.iter().filter(move |m| m.media_name.media == kind && m.media_name.port.value != 0);
    let has_codec = |kind: &'static str, codec: &str| active(kind).any(|m| payload_types(m, codec).next().is_some());
    if active("video").next().is_none() {
        return Err(OfferError::NoVideo);
    }
    if !has_codec("video", "h264") {
        return Err(OfferError::NoH264);
    }
    let audio = active("audio").next();
    if audio.is_some() && !has_codec("audio", "opus") {
        return Err(OfferError::NoOpus);
    }
    let receives_only = desc.media_descriptions.iter().all(|m| m.attributes.iter().any(|a| a.key == "recvonly" || a.key == "inactive"));
    if receives_only {
        return Err(OfferError::NotSending);
    }
    Ok(OfferSummary { audio: audio.map(opus_channels) })
}

/// The payload types a media section maps to `codec` (`a=rtpmap:<type> <codec>/<rate>…`).
fn payload_types<'a>(media: &'a MediaDescription, codec: &'a str) -> impl Iterator<Item = &'a str> {
    media
        .attributes
        .iter()
        .filter(|a| a.key == "rtpmap")
        .filter_map(|a| a.value.as_deref()?.split_once(' '))
        .filter(move |(_, format)| format.split('/').next().is_some_and(|name| name.eq_ignore_ascii_case(codec)))
        .map(|(payload_type, _)| payload_type)
}

/// Stereo when the Opus format says the publisher will send it (`sprop-stereo=1`, RFC 7587
/// §6.1) or wants it (`stereo=1`: what OBS and the web apps that ask for stereo put in); mono,
/// the RFC's default, otherwise.
fn opus_channels(audio: &MediaDescription) -> Channels {
    let opus: Vec<&str> = payload_types(audio, "opus").collect();
    let stereo = audio
        .attributes
        .iter()
        .filter(|a| a.key == "fmtp")
        .filter_map(|a| a.value.as_deref()?.split_once(' '))
        .filter(|(payload_type, _)| opus.contains(payload_type))
        .flat_map(|(_, parameters)| parameters.split(';'))
        .filter_map(|parameter| parameter.split_once('='))
        .any(|(key, value)| matches!(key.trim(), "stereo" | "sprop-stereo") && value.trim() == "1");
    if stereo { Channels::Stereo } else { Channels::Mono }
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
        assert_eq!(check(&offer(&format!("{AUDIO_OPUS}{VIDEO_H264}"))), Ok(OfferSummary { audio: Some(Channels::Mono) }));
        assert_eq!(check(&offer(VIDEO_H264)), Ok(OfferSummary { audio: None }));
    }

    #[test]
    fn the_audio_is_stereo_when_its_opus_format_says_so() {
        let with_fmtp = |fmtp: &str| offer(&format!("{AUDIO_OPUS}a=fmtp:111 {fmtp}\r\n{VIDEO_H264}"));
        let channels = |fmtp: &str| check(&with_fmtp(fmtp)).map(|s| s.audio);
        // Chromium's own offer: mono, as RFC 7587 has it by default.
        assert_eq!(channels("minptime=10;useinbandfec=1"), Ok(Some(Channels::Mono)));
        // OBS (libdatachannel's default Opus profile), and what web apps munge in for stereo.
        assert_eq!(channels("minptime=10;maxaveragebitrate=96000;stereo=1;sprop-stereo=1;useinbandfec=1"), Ok(Some(Channels::Stereo)));
        assert_eq!(channels("sprop-stereo=1"), Ok(Some(Channels::Stereo)));
        assert_eq!(channels("stereo=0; sprop-stereo=0"), Ok(Some(Channels::Mono)));
        // Another payload type's parameters say nothing of the Opus one.
        let other = offer(&format!("{AUDIO_OPUS}a=fmtp:112 stereo=1\r\n{VIDEO_H264}"));
        assert_eq!(check(&other).map(|s| s.audio), Ok(Some(Channels::Mono)));
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
