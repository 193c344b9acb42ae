//! H.264 over RTP (RFC 6184, packetization-mode 1) → access units ready for FLV.
//!
//! Owns: depacketizing single NAL units, STAP-A and FU-A into NAL units; remembering SPS/PPS and
//! noticing when they change; refusing to hand on anything until a keyframe with its parameter
//! sets, and again after any damaged frame. Does not own: ordering and loss detection
//! (`frames`), timestamps (`clock`), or the FLV bytes (`flv`).

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::rtp::RtpPacket;

const NAL_TYPE_MASK: u8 = 0x1F;
const FORBIDDEN_BIT: u8 = 0x80;
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const NAL_FILLER: u8 = 12;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;
const STAP_A_LENGTH_SIZE: usize = 2;
/// Largest access unit rebuilt: a 1080p keyframe at a high bit rate is a few hundred KiB.
pub const MAX_ACCESS_UNIT_BYTES: usize = 2 * 1024 * 1024;
/// Largest SPS or PPS kept: real ones are tens of bytes; FLV stores their lengths in 16 bits.
pub const MAX_PARAMETER_SET_BYTES: usize = 1024;

/// Why a frame could not be rebuilt; each one means the frame is dropped.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DepacketizeError {
    #[error("empty RTP payload")]
    EmptyPayload,
    #[error("NAL header has the forbidden bit set")]
    ForbiddenBit,
    #[error("STAP-A unit claims {claimed} bytes, {left} left")]
    StapALengthPastEnd { claimed: usize, left: usize },
    #[error("FU-A fragment too short")]
    FuATooShort,
    #[error("FU-A fragment without a start fragment before it")]
    FuAWithoutStart,
    #[error("FU-A starts again before its end fragment")]
    FuANotEnded,
    #[error("unsupported RTP H.264 packet type {0} (only single NAL, STAP-A and FU-A)")]
    UnsupportedPacketType(u8),
}

/// Splits one frame's RTP payloads into NAL units (without start codes or length prefixes).
pub fn depacketize(packets: &[RtpPacket], nalus: &mut Vec<Bytes>) -> Result<(), DepacketizeError> {
    let mut fragment: Option<BytesMut> = None;
    for packet in packets {
        let payload = &packet.payload;
        let header = *payload.first().ok_or(DepacketizeError::EmptyPayload)?;
        if header & FORBIDDEN_BIT != 0 {
            return Err(DepacketizeError::ForbiddenBit);
        }
        match header & NAL_TYPE_MASK {
            1..=23 => nalus.push(payload.clone()),
            STAP_A => split_stap_a(payload.slice(1..), nalus)?,
            FU_A => {
                let fu_header = *payload.get(1).ok_or(DepacketizeError::FuATooShort)?;
                let data = &payload[2..];
                if fu_header & FU_START != 0 {
                    if fragment.is_some() {
                        return Err(DepacketizeError::FuANotEnded);
                    }
                    let mut nal = BytesMut::with_capacity(data.len() * 8);
                    nal.extend_from_slice(&[(header & !NAL_TYPE_MASK) | (fu_header & NAL_TYPE_MASK)]);
                    nal.extend_from_slice(data);
                    fragment = Some(nal);
                } else {
                    fragment.as_mut().ok_or(DepacketizeError::FuAWithoutStart)?.extend_from_slice(data);
                }
                if fu_header & FU_END != 0
                    && let Some(nal) = fragment.take()
                {
                    nalus.push(nal.freeze());
                }
            }
            other => return Err(DepacketizeError::UnsupportedPacketType(other)),
        }
    }
    match fragment {
        Some(_) => Err(DepacketizeError::FuANotEnded),
        None => Ok(()),
    }
}

fn split_stap_a(mut units: Bytes, nalus: &mut Vec<Bytes>) -> Result<(), DepacketizeError> {
    while !units.is_empty() {
        let [hi, lo, ..] = units[..] else {
            return Err(DepacketizeError::StapALengthPastEnd { claimed: STAP_A_LENGTH_SIZE, left: units.len() });
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let left = units.len() - STAP_A_LENGTH_SIZE;
        if len > left || len == 0 {
            return Err(DepacketizeError::StapALengthPastEnd { claimed: len, left });
        }
        let _ = units.split_to(STAP_A_LENGTH_SIZE);
        nalus.push(units.split_to(len));
    }
    Ok(())
}

/// A frame ready for the FLV muxer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub keyframe: bool,
    /// Picture NAL units (slices, SEI), parameter sets and delimiters removed.
    pub nalus: Vec<Bytes>,
}

/// The parameter sets a decoder needs before the next keyframe, each at most
/// `MAX_PARAMETER_SET_BYTES` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSets {
    sps: Bytes,
    pps: Bytes,
}

impl ParameterSets {
    /// `None` when either is longer than `MAX_PARAMETER_SET_BYTES`.
    pub fn new(sps: Bytes, pps: Bytes) -> Option<Self> {
        (sps.len() <= MAX_PARAMETER_SET_BYTES && pps.len() <= MAX_PARAMETER_SET_BYTES).then_some(Self { sps, pps })
    }

    pub fn sps(&self) -> &Bytes {
        &self.sps
    }

    pub fn pps(&self) -> &Bytes {
        &self.pps
    }
}

/// What one assembled frame turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoOutput {
    /// New or changed SPS/PPS; comes right before the keyframe that uses them.
    ParameterSets(ParameterSets),
    Frame(AccessUnit),
    /// The frame was dropped; the stream can continue only from a keyframe.
    NeedKeyframe(DropReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Nothing decodable has been sent yet, or the frames before this one were lost.
    WaitingForKeyframe,
    /// A keyframe arrived before any SPS/PPS.
    MissingParameterSets,
    /// An SPS or PPS longer than `MAX_PARAMETER_SET_BYTES`.
    ParameterSetTooLong,
    /// The frame's payloads add up to more than `MAX_ACCESS_UNIT_BYTES`.
    TooLarge,
    Damaged(DepacketizeError),
}

/// Per-track state: the last parameter sets seen and sent, and whether the decoder downstream
/// is in sync (every frame since the last keyframe was forwarded).
#[derive(Debug, Default)]
pub struct H264Track {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    announced: Option<ParameterSets>,
    in_sync: bool,
    scratch: Vec<Bytes>,
}

impl H264Track {
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames were lost before the next one: stop forwarding until a keyframe.
    pub fn lost_frames(&mut self) {
        self.in_sync = false;
    }

    pub fn in_sync(&self) -> bool {
        self.in_sync
    }

    /// Turns one complete frame's packets into outputs (usually exactly one `Frame`).
    pub fn push_frame(&mut self, packets: &[RtpPacket], out: &mut Vec<VideoOutput>) {
        self.scratch.clear();
        if packets.iter().map(|p| p.payload.len()).sum::<usize>() > MAX_ACCESS_UNIT_BYTES {
            self.in_sync = false;
            out.push(VideoOutput::NeedKeyframe(DropReason::TooLarge));
            return;
        }
        if let Err(e) = depacketize(packets, &mut self.scratch) {
            self.in_sync = false;
            out.push(VideoOutput::NeedKeyframe(DropReason::Damaged(e)));
            return;
        }
        let mut keyframe = false;
        let mut nalus = Vec::with_capacity(self.scratch.len());
        for nal in self.scratch.drain(..) {
            match nal.first().map(|h| h & NAL_TYPE_MASK) {
                Some(NAL_SPS) => self.sps = Some(nal),
                Some(NAL_PPS) => self.pps = Some(nal),
                Some(NAL_AUD | NAL_FILLER) | None => {}
                Some(kind) => {
                    keyframe |= kind == NAL_IDR;
                    nalus.push(nal);
                }
            }
        }
        if nalus.is_empty() {
            return; // parameter sets alone; they travel with the next keyframe
        }
        if keyframe {
            let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
                self.in_sync = false;
                out.push(VideoOutput::NeedKeyframe(DropReason::MissingParameterSets));
                return;
            };
            let Some(sets) = ParameterSets::new(sps.clone(), pps.clone()) else {
                self.in_sync = false;
                out.push(VideoOutput::NeedKeyframe(DropReason::ParameterSetTooLong));
                return;
            };
            if self.announced.as_ref() != Some(&sets) {
                self.announced = Some(sets.clone());
                out.push(VideoOutput::ParameterSets(sets));
            }
            self.in_sync = true;
        } else if !self.in_sync {
            out.push(VideoOutput::NeedKeyframe(DropReason::WaitingForKeyframe));
            return;
        }
        out.push(VideoOutput::Frame(AccessUnit { keyframe, nalus }));
    }
}

/// Picture size and frame rate, from an SPS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
    pub profile_idc: u8,
    pub level_idc: u8,
}

impl VideoFormat {
    /// Reads an SPS NAL unit (header byte included); `None` if it does not parse.
    pub fn from_sps(sps: &[u8]) -> Option<Self> {
        use h264_reader::nal::sps::SeqParameterSet;
        use h264_reader::rbsp::{BitReader, decode_nal};
        let rbsp = decode_nal(sps).ok()?;
        let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
        let (width, height) = sps.pixel_dimensions().ok()?;
        Some(Self {
            width,
            height,
            frame_rate: sps.fps().filter(|f| f.is_finite() && *f > 0.0),
            profile_idc: sps.profile_idc.into(),
            level_idc: sps.level_idc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS and PPS of a 1280x720 constrained-baseline stream (from x264, `-profile:v baseline`).
    pub(crate) const SPS_720P: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1,
        0x83, 0x24, 0x80,
    ];
    pub(crate) const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    fn pkt(seq: u16, payload: Vec<u8>) -> RtpPacket {
        RtpPacket { sequence_number: seq, timestamp: 0, marker: false, payload: payload.into() }
    }

    fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![STAP_A | 0x60];
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    fn fu_a(nal_header: u8, data: &[u8], start: bool, end: bool) -> Vec<u8> {
        let mut fu_header = nal_header & NAL_TYPE_MASK;
        if start {
            fu_header |= FU_START;
        }
        if end {
            fu_header |= FU_END;
        }
        let mut out = vec![(nal_header & 0xE0) | FU_A, fu_header];
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn fu_a_fragments_are_joined_into_one_nal_with_its_header_restored() {
        let packets =
            [pkt(1, fu_a(0x65, &[1, 2], true, false)), pkt(2, fu_a(0x65, &[3], false, false)), pkt(3, fu_a(0x65, &[4], false, true))];
        let mut nalus = Vec::new();
        depacketize(&packets, &mut nalus).unwrap();
        assert_eq!(nalus, vec![Bytes::from_static(&[0x65, 1, 2, 3, 4])]);
    }

    #[test]
    fn stap_a_is_split_into_its_units() {
        let mut nalus = Vec::new();
        depacketize(&[pkt(1, stap_a(&[SPS_720P, PPS]))], &mut nalus).unwrap();
        assert_eq!(nalus, vec![Bytes::from_static(SPS_720P), Bytes::from_static(PPS)]);
    }

    #[test]
    fn hostile_payloads_are_errors_not_panics() {
        let cases: [(Vec<u8>, DepacketizeError); 6] = [
            (vec![], DepacketizeError::EmptyPayload),
            (vec![0xE5], DepacketizeError::ForbiddenBit),
            (vec![STAP_A, 0], DepacketizeError::StapALengthPastEnd { claimed: 2, left: 1 }),
            (vec![STAP_A, 0, 9, 1], DepacketizeError::StapALengthPastEnd { claimed: 9, left: 1 }),
            (vec![FU_A], DepacketizeError::FuATooShort),
            (vec![25, 0, 0], DepacketizeError::UnsupportedPacketType(25)),
        ];
        for (payload, expected) in cases {
            let mut nalus = Vec::new();
            assert_eq!(depacketize(&[pkt(1, payload.clone())], &mut nalus), Err(expected), "{payload:?}");
        }
    }

    #[test]
    fn fu_a_with_a_lost_start_or_end_is_rejected() {
        let mut nalus = Vec::new();
        assert_eq!(depacketize(&[pkt(1, fu_a(0x65, &[1], false, true))], &mut nalus), Err(DepacketizeError::FuAWithoutStart));
        assert_eq!(depacketize(&[pkt(1, fu_a(0x65, &[1], true, false))], &mut nalus), Err(DepacketizeError::FuANotEnded));
        let restarted = [pkt(1, fu_a(0x65, &[1], true, false)), pkt(2, fu_a(0x65, &[1], true, true))];
        assert_eq!(depacketize(&restarted, &mut nalus), Err(DepacketizeError::FuANotEnded));
    }

    #[test]
    fn nothing_is_forwarded_before_a_keyframe_with_parameter_sets() {
        let mut track = H264Track::new();
        let mut out = Vec::new();
        track.push_frame(&[pkt(1, vec![0x41, 9, 9])], &mut out);
        assert_eq!(out, vec![VideoOutput::NeedKeyframe(DropReason::WaitingForKeyframe)]);
        out.clear();
        track.push_frame(&[pkt(2, vec![0x65, 1])], &mut out);
        assert_eq!(out, vec![VideoOutput::NeedKeyframe(DropReason::MissingParameterSets)]);
    }

    #[test]
    fn keyframe_after_sps_pps_emits_parameter_sets_first_and_only_when_they_change() {
        let mut track = H264Track::new();
        let mut out = Vec::new();
        let keyframe = [pkt(1, stap_a(&[SPS_720P, PPS, &[0x09, 0xf0]])), pkt(2, vec![0x65, 1])];
        track.push_frame(&keyframe, &mut out);
        let sets = ParameterSets::new(Bytes::from_static(SPS_720P), Bytes::from_static(PPS)).expect("short");
        assert_eq!(
            out,
            vec![
                VideoOutput::ParameterSets(sets),
                VideoOutput::Frame(AccessUnit { keyframe: true, nalus: vec![Bytes::from_static(&[0x65, 1])] })
            ]
        );
        out.clear();
        track.push_frame(&keyframe, &mut out);
        assert!(matches!(out[..], [VideoOutput::Frame(AccessUnit { keyframe: true, .. })]));
        out.clear();
        track.push_frame(&[pkt(3, vec![0x41, 2])], &mut out);
        assert!(matches!(out[..], [VideoOutput::Frame(AccessUnit { keyframe: false, .. })]));
    }

    #[test]
    fn after_loss_delta_frames_wait_for_the_next_keyframe() {
        let mut track = H264Track::new();
        let mut out = Vec::new();
        track.push_frame(&[pkt(1, stap_a(&[SPS_720P, PPS])), pkt(2, vec![0x65, 1])], &mut out);
        track.lost_frames();
        out.clear();
        track.push_frame(&[pkt(3, vec![0x41, 2])], &mut out);
        assert_eq!(out, vec![VideoOutput::NeedKeyframe(DropReason::WaitingForKeyframe)]);
    }

    #[test]
    fn oversized_frames_and_parameter_sets_are_dropped_not_forwarded() {
        let mut track = H264Track::new();
        let mut out = Vec::new();
        let chunk = vec![0x7C; 60_000];
        let huge: Vec<RtpPacket> = (0..40).map(|i| pkt(i, chunk.clone())).collect();
        track.push_frame(&huge, &mut out);
        assert_eq!(out, vec![VideoOutput::NeedKeyframe(DropReason::TooLarge)]);
        out.clear();
        // An SPS delivered by FU-A can be longer than FLV's 16-bit length field.
        let long_sps = [SPS_720P, &vec![0xAA; 70_000][..]].concat();
        let fragments = [pkt(1, fu_a(0x67, &long_sps[1..], true, true)), pkt(2, stap_a(&[PPS])), pkt(3, vec![0x65, 1])];
        track.push_frame(&fragments, &mut out);
        assert_eq!(out, vec![VideoOutput::NeedKeyframe(DropReason::ParameterSetTooLong)]);
        assert!(!track.in_sync());
    }

    #[test]
    fn sps_gives_the_picture_size() {
        let format = VideoFormat::from_sps(SPS_720P).expect("valid SPS");
        assert_eq!((format.width, format.height), (1280, 720));
        assert_eq!(format.profile_idc, 66);
    }
}
