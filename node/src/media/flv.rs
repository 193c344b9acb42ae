//! FLV tag bodies (what RTMP carries in its audio/video messages) and the FLV file framing
//! around them (for `file://` destinations). Pure byte building: the body layouts are from the
//! FLV spec v10.1, annex E (AVCVIDEOPACKET, AACAUDIODATA).

use bytes::{BufMut, Bytes, BytesMut};

use super::aac::{AudioFormat, Channels};
use super::h264::{AccessUnit, ParameterSets, VideoFormat};

const CODEC_AVC: u8 = 7;
const FRAME_KEY: u8 = 1 << 4;
const FRAME_INTER: u8 = 2 << 4;
const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;
/// SoundFormat AAC (10), 44 kHz flag and stereo flag (always so for AAC: the
/// AudioSpecificConfig says what the stream is), 16-bit.
const AAC_SOUND_HEADER: u8 = (10 << 4) | (3 << 2) | (1 << 1) | 1;
const AAC_SEQUENCE_HEADER: u8 = 0;
const AAC_RAW: u8 = 1;

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// AVC sequence header: the AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1) built from
/// one SPS and one PPS.
pub fn avc_sequence_header(sets: &ParameterSets) -> Bytes {
    let (sps, pps) = (sets.sps(), sets.pps());
    let mut body = BytesMut::with_capacity(16 + sps.len() + pps.len());
    body.put_slice(&[FRAME_KEY | CODEC_AVC, AVC_SEQUENCE_HEADER, 0, 0, 0]);
    // version, profile, compatibility, level (copied from the SPS), 4-byte NAL lengths.
    body.put_u8(1);
    body.put_slice(sps.get(1..4).unwrap_or(&[0x42, 0xc0, 0x1f]));
    body.put_u8(0xFC | 3);
    body.put_u8(0xE0 | 1);
    body.put_u16(sps.len() as u16); // ParameterSets bounds both lengths far below u16::MAX
    body.put_slice(sps);
    body.put_u8(1);
    body.put_u16(pps.len() as u16);
    body.put_slice(pps);
    body.freeze()
}

/// One access unit as an AVC NALU tag body: 4-byte length-prefixed NAL units. Composition time
/// is 0: WebRTC H.264 has no B-frames.
pub fn avc_frame(au: &AccessUnit) -> Bytes {
    let size: usize = au.nalus.iter().map(|n| 4 + n.len()).sum();
    let mut body = BytesMut::with_capacity(5 + size);
    body.put_slice(&[if au.keyframe { FRAME_KEY } else { FRAME_INTER } | CODEC_AVC, AVC_NALU, 0, 0, 0]);
    for nal in &au.nalus {
        body.put_u32(nal.len() as u32);
        body.put_slice(nal);
    }
    body.freeze()
}

/// AAC sequence header: the AudioSpecificConfig.
pub fn aac_sequence_header(audio_specific_config: &[u8]) -> Bytes {
    aac_body(AAC_SEQUENCE_HEADER, audio_specific_config)
}

/// One raw AAC frame.
pub fn aac_frame(data: &[u8]) -> Bytes {
    aac_body(AAC_RAW, data)
}

fn aac_body(packet_type: u8, data: &[u8]) -> Bytes {
    let mut body = BytesMut::with_capacity(2 + data.len());
    body.put_slice(&[AAC_SOUND_HEADER, packet_type]);
    body.put_slice(data);
    body.freeze()
}

/// What `onMetaData` announces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamInfo {
    pub video: VideoFormat,
    pub audio: Option<AudioFormat>,
}

/// Frame rate announced when the SPS carries none: what browsers send at the default setting.
pub const ASSUMED_FRAME_RATE: f64 = 30.0;

impl StreamInfo {
    pub fn frame_rate(&self) -> f64 {
        self.video.frame_rate.unwrap_or(ASSUMED_FRAME_RATE)
    }

    /// The same facts as rml_rtmp's `StreamMetadata`, for an RTMP `@setDataFrame`.
    pub fn to_rtmp(self) -> rml_rtmp::sessions::StreamMetadata {
        let mut m = rml_rtmp::sessions::StreamMetadata::new();
        m.video_width = Some(self.video.width);
        m.video_height = Some(self.video.height);
        m.video_codec_id = Some(CODEC_AVC.into());
        m.video_frame_rate = Some(self.frame_rate() as f32);
        if let Some(audio) = self.audio {
            m.audio_codec_id = Some(10);
            m.audio_bitrate_kbps = Some(audio.bitrate / 1000);
            m.audio_sample_rate = Some(super::aac::SAMPLE_RATE);
            m.audio_channels = Some(audio.channels.count().into());
            m.audio_is_stereo = Some(audio.channels == Channels::Stereo);
        }
        m.encoder = Some(concat!("ivs-relay ", env!("CARGO_PKG_VERSION")).to_owned());
        m
    }

    /// The `onMetaData` script tag body of an FLV file.
    pub fn script_tag_body(self) -> Bytes {
        use rml_amf0::Amf0Value::{Number, Object, Utf8String};
        let mut props = std::collections::HashMap::new();
        props.insert("width".to_owned(), Number(self.video.width.into()));
        props.insert("height".to_owned(), Number(self.video.height.into()));
        props.insert("framerate".to_owned(), Number(self.frame_rate()));
        props.insert("videocodecid".to_owned(), Number(CODEC_AVC.into()));
        if let Some(audio) = self.audio {
            props.insert("audiocodecid".to_owned(), Number(10.0));
            props.insert("audiosamplerate".to_owned(), Number(super::aac::SAMPLE_RATE.into()));
            props.insert("audiodatarate".to_owned(), Number(f64::from(audio.bitrate / 1000)));
            props.insert("stereo".to_owned(), rml_amf0::Amf0Value::Boolean(audio.channels == Channels::Stereo));
        }
        props.insert("encoder".to_owned(), Utf8String(concat!("ivs-relay ", env!("CARGO_PKG_VERSION")).to_owned()));
        let values = vec![Utf8String("onMetaData".to_owned()), Object(props)];
        // Serializing plain numbers, strings and an object cannot fail.
        rml_amf0::serialize(&values).map(Bytes::from).unwrap_or_default()
    }
}

/// FLV file header for a file with video and (optionally) audio, plus PreviousTagSize0.
pub fn file_header(has_audio: bool) -> [u8; 13] {
    let flags = 0x01 | if has_audio { 0x04 } else { 0 };
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// One FLV file tag: 11-byte header, body, PreviousTagSize.
pub fn file_tag(tag_type: u8, timestamp_ms: u32, body: &[u8], out: &mut Vec<u8>) {
    let size = body.len() as u32;
    out.reserve(15 + body.len());
    out.push(tag_type);
    out.extend_from_slice(&size.to_be_bytes()[1..]);
    out.extend_from_slice(&timestamp_ms.to_be_bytes()[1..]);
    out.push((timestamp_ms >> 24) as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(body);
    out.extend_from_slice(&(size + 11).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_header_is_an_avc_decoder_configuration_record() {
        let sets =
            ParameterSets::new(Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xaa]), Bytes::from_static(&[0x68, 0xce])).expect("short");
        let body = avc_sequence_header(&sets);
        assert_eq!(
            &body[..],
            &[0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, 5, 0x67, 0x42, 0xc0, 0x1f, 0xaa, 1, 0, 2, 0x68, 0xce]
        );
    }

    #[test]
    fn frames_are_length_prefixed_and_flag_keyframes() {
        let au = AccessUnit { keyframe: true, nalus: vec![Bytes::from_static(&[0x65, 1, 2]), Bytes::from_static(&[0x65, 3])] };
        assert_eq!(&avc_frame(&au)[..], &[0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 1, 2, 0, 0, 0, 2, 0x65, 3]);
        let delta = AccessUnit { keyframe: false, nalus: vec![Bytes::from_static(&[0x41])] };
        assert_eq!(avc_frame(&delta)[0], 0x27);
    }

    #[test]
    fn aac_bodies_carry_the_aac_sound_header() {
        assert_eq!(&aac_sequence_header(&[0x11, 0x90])[..], &[0xaf, 0, 0x11, 0x90]);
        assert_eq!(&aac_frame(&[1, 2])[..], &[0xaf, 1, 1, 2]);
    }

    #[test]
    fn file_tags_use_the_extended_timestamp_byte() {
        let mut out = Vec::new();
        file_tag(TAG_VIDEO, 0x0123_4567, &[9, 9], &mut out);
        assert_eq!(out, vec![9, 0, 0, 2, 0x23, 0x45, 0x67, 0x01, 0, 0, 0, 9, 9, 0, 0, 0, 13]);
    }

    #[test]
    fn metadata_names_size_rate_and_codecs() {
        let info = StreamInfo {
            video: VideoFormat { width: 1280, height: 720, frame_rate: None, profile_idc: 66, level_idc: 31 },
            audio: Some(AudioFormat::new(Channels::Mono, 128_000)),
        };
        let body = info.script_tag_body();
        let values = rml_amf0::deserialize(&mut &body[..]).expect("valid AMF0");
        assert_eq!(values[0], rml_amf0::Amf0Value::Utf8String("onMetaData".into()));
        let props = values[1].clone().get_object_properties().expect("object");
        assert_eq!(props["width"], rml_amf0::Amf0Value::Number(1280.0));
        assert_eq!(props["framerate"], rml_amf0::Amf0Value::Number(30.0));
        assert_eq!(props["audiocodecid"], rml_amf0::Amf0Value::Number(10.0));
        assert_eq!(props["audiodatarate"], rml_amf0::Amf0Value::Number(64.0));
        assert_eq!(props["stereo"], rml_amf0::Amf0Value::Boolean(false));
    }
}
