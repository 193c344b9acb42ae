//! RTP packets as the media core sees them, and wrap-safe extension of RTP sequence numbers and
//! timestamps. Parsing the wire format (and SRTP) is the `webrtc` crate's job; this module owns
//! only the fields the core uses.

use bytes::Bytes;

/// One received RTP packet of a single track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// Extends a wrapping counter (16-bit sequence numbers, 32-bit timestamps) into a monotonic
/// 64-bit space, using the usual half-range rule: a value within half the range of the last one
/// is its neighbour, wherever the wrap falls.
#[derive(Debug, Clone, Default)]
pub struct Unwrapper<const BITS: u32> {
    last: Option<i64>,
}

/// Sequence numbers: 16 bits.
pub type SeqUnwrapper = Unwrapper<16>;
/// RTP timestamps: 32 bits.
pub type TimestampUnwrapper = Unwrapper<32>;

impl<const BITS: u32> Unwrapper<BITS> {
    const RANGE: i64 = 1 << BITS;
    const HALF: i64 = 1 << (BITS - 1);

    pub fn new() -> Self {
        Self { last: None }
    }

    /// The extended value of `value`. Values before the first one seen extend to negative
    /// numbers rather than wrapping forward, so a reordered packet stays in the past.
    pub fn unwrap(&mut self, value: u64) -> i64 {
        let value = (value as i64) & (Self::RANGE - 1);
        let extended = match self.last {
            None => value,
            Some(last) => {
                let delta = (value - last).rem_euclid(Self::RANGE);
                if delta < Self::HALF { last + delta } else { last + delta - Self::RANGE }
            }
        };
        if self.last.is_none_or(|last| extended > last) {
            self.last = Some(extended);
        }
        extended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_extend_across_the_wrap() {
        let mut u = SeqUnwrapper::new();
        assert_eq!(u.unwrap(65534), 65534);
        assert_eq!(u.unwrap(65535), 65535);
        assert_eq!(u.unwrap(0), 65536);
        assert_eq!(u.unwrap(1), 65537);
    }

    #[test]
    fn a_late_packet_from_before_the_wrap_stays_in_the_past() {
        let mut u = SeqUnwrapper::new();
        u.unwrap(65535);
        u.unwrap(2);
        assert_eq!(u.unwrap(65534), 65534);
        assert_eq!(u.unwrap(3), 65539);
    }

    #[test]
    fn a_packet_older_than_the_first_extends_below_it() {
        let mut u = SeqUnwrapper::new();
        assert_eq!(u.unwrap(0), 0);
        assert_eq!(u.unwrap(65535), -1);
        assert_eq!(u.unwrap(1), 1);
    }

    #[test]
    fn timestamps_extend_across_the_wrap() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap(u32::MAX as u64 - 1499), u32::MAX as i64 - 1499);
        assert_eq!(u.unwrap(1500), (1i64 << 32) + 1500);
    }
}
