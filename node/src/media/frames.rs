//! Groups a video track's RTP packets into whole frames (all packets of one RTP timestamp, up to
//! the marker bit), in sequence order. Packets may arrive reordered or be retransmitted after a
//! NACK, so a missing packet is waited for until `max_wait`; after that the gap is skipped and
//! reported, and the frame the gap cut into is discarded, never emitted.
//!
//! It does not look inside payloads (that is `h264`'s job) and does not read the clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::rtp::{RtpPacket, SeqUnwrapper};

/// What the assembler hands on.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    /// Every packet of one frame, in order.
    Frame(Vec<RtpPacket>),
    /// Packets were lost for good; everything up to the next complete frame was discarded.
    Gap { lost_packets: u64 },
}

#[derive(Debug)]
pub struct FrameAssembler {
    seq: SeqUnwrapper,
    /// Buffered packets by extended sequence number, with their arrival time.
    pending: BTreeMap<i64, (Instant, RtpPacket)>,
    /// Extended sequence number of the first packet of the next frame to emit.
    next: Option<i64>,
    /// After a gap, the packets of the frame the gap cut into are dropped until its marker.
    discarding_timestamp: Option<u32>,
    max_wait: Duration,
    max_pending: usize,
    /// The highest extended sequence number seen.
    highest: Option<i64>,
    /// `(start, end)`: the frame starting at `start` is here from `start` up to `end`
    /// (exclusive), one timestamp and no marker, so the next look for its end starts at `end`.
    /// Without it every packet of a frame rescanned the frame: quadratic in its packets.
    scanned: Option<(i64, i64)>,
    /// Packets that arrived after a later one and were still in time: retransmissions after a
    /// NACK, or reordering.
    repaired: u64,
}

/// How a packet relates to frame boundaries, read from the H.264 payload header: the only
/// codec knowledge here, used to decide whether the very first packet can start a frame.
fn starts_a_nal_unit(payload: &[u8]) -> bool {
    const FU_A: u8 = 28;
    const FU_START: u8 = 0x80;
    match payload {
        [indicator, header, ..] if indicator & 0x1F == FU_A => header & FU_START != 0,
        [_, ..] => true,
        [] => false,
    }
}

impl FrameAssembler {
    pub fn new(max_wait: Duration, max_pending: usize) -> Self {
        Self {
            seq: SeqUnwrapper::new(),
            pending: BTreeMap::new(),
            next: None,
            discarding_timestamp: None,
            max_wait,
            max_pending,
            highest: None,
            scanned: None,
            repaired: 0,
        }
    }

    /// Packets that filled a hole in time (see `repaired`).
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// Takes one packet; returns the frames (and gaps) it completed, in order.
    pub fn push(&mut self, now: Instant, packet: RtpPacket) -> Vec<Assembled> {
        let ext = self.seq.unwrap(packet.sequence_number.into());
        let next = match self.next {
            Some(next) => next,
            None if starts_a_nal_unit(&packet.payload) => *self.next.insert(ext),
            None => {
                // Joined mid-frame: skip the rest of this frame.
                self.discarding_timestamp = Some(packet.timestamp);
                self.next = Some(ext + 1);
                return self.flush_discarded(packet.marker);
            }
        };
        if ext < next || self.pending.contains_key(&ext) {
            return Vec::new(); // late or duplicate retransmission
        }
        if self.highest.is_some_and(|highest| ext < highest) {
            self.repaired += 1;
        }
        self.highest = self.highest.max(Some(ext));
        self.pending.insert(ext, (now, packet));
        let mut out = Vec::new();
        self.drain(&mut out);
        if self.pending.len() > self.max_pending {
            self.skip_gap(&mut out);
        }
        out
    }

    /// Gives up on missing packets waited for longer than `max_wait`.
    pub fn poll(&mut self, now: Instant) -> Vec<Assembled> {
        let mut out = Vec::new();
        while let Some(oldest) = self.pending.values().next().map(|(at, _)| *at) {
            if now.duration_since(oldest) < self.max_wait {
                break;
            }
            self.skip_gap(&mut out);
        }
        out
    }

    /// When `poll` next needs to run, if anything is waited for.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.values().next().map(|(at, _)| *at + self.max_wait)
    }

    fn flush_discarded(&mut self, marker: bool) -> Vec<Assembled> {
        if marker {
            self.discarding_timestamp = None;
        }
        let mut out = Vec::new();
        self.drain(&mut out);
        out
    }

    /// Emits every complete frame at the head of the buffer.
    fn drain(&mut self, out: &mut Vec<Assembled>) {
        while let Some(next) = self.next {
            let Some(end) = self.complete_frame_end(next) else { return };
            let frame: Vec<RtpPacket> = (next..=end).filter_map(|ext| self.pending.remove(&ext).map(|(_, p)| p)).collect();
            self.next = Some(end + 1);
            match self.discarding_timestamp.take() {
                Some(ts) if frame.first().is_some_and(|p| p.timestamp == ts) => {}
                // Padding (bandwidth probes) only fills sequence numbers.
                _ if frame.iter().all(|p| p.payload.is_empty()) => {}
                _ => out.push(Assembled::Frame(frame)),
            }
        }
    }

    /// The last sequence number of the frame starting at `start`, if all of it is here: the
    /// marker packet, or the packet before one with a new timestamp. What it has looked at
    /// stays valid while `start` is the next frame: packets leave `pending` only as `next`
    /// moves past them, and a duplicate never replaces one.
    fn complete_frame_end(&mut self, start: i64) -> Option<i64> {
        let (_, first) = self.pending.get(&start)?;
        if first.payload.is_empty() {
            return Some(start);
        }
        let timestamp = first.timestamp;
        let mut ext = match self.scanned {
            Some((scanned_start, end)) if scanned_start == start => end,
            _ => start,
        };
        loop {
            let Some((_, packet)) = self.pending.get(&ext) else {
                self.scanned = Some((start, ext));
                return None;
            };
            if packet.timestamp != timestamp {
                return Some(ext - 1);
            }
            if packet.marker {
                return Some(ext);
            }
            ext += 1;
        }
    }

    /// Skips the first hole in the buffer. The packets before it are the head of a frame that
    /// lost its tail; the frame of the first packet after it may have lost its head: both go.
    fn skip_gap(&mut self, out: &mut Vec<Assembled>) {
        let Some(&first_pending) = self.pending.keys().next() else { return };
        let mut hole = self.next.unwrap_or(first_pending).min(first_pending);
        let mut cut_timestamp = None;
        while let Some((_, head)) = self.pending.remove(&hole) {
            cut_timestamp = Some(head.timestamp);
            hole += 1;
        }
        let Some((&resume, (_, packet))) = self.pending.iter().next() else {
            // Only a frame's head was here: its tail may still come, and must be dropped.
            self.discarding_timestamp = cut_timestamp;
            self.next = Some(hole);
            out.push(Assembled::Gap { lost_packets: 1 });
            return;
        };
        self.discarding_timestamp = Some(packet.timestamp);
        self.next = Some(resume);
        out.push(Assembled::Gap { lost_packets: (resume - hole) as u64 });
        self.drain_discarding(out);
    }

    /// Drops the cut frame's packets that are here, then emits what follows.
    fn drain_discarding(&mut self, out: &mut Vec<Assembled>) {
        while let (Some(next), Some(ts)) = (self.next, self.discarding_timestamp) {
            match self.pending.get(&next) {
                Some((_, p)) if p.timestamp == ts => {
                    let marker = p.marker;
                    self.pending.remove(&next);
                    self.next = Some(next + 1);
                    if marker {
                        self.discarding_timestamp = None;
                    }
                }
                Some(_) => self.discarding_timestamp = None,
                None => return,
            }
        }
        self.drain(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(seq: u16, ts: u32, marker: bool) -> RtpPacket {
        RtpPacket { sequence_number: seq, timestamp: ts, marker, payload: Bytes::from_static(&[0x65, 1]) }
    }

    fn frames(out: &[Assembled]) -> Vec<Vec<u16>> {
        out.iter()
            .filter_map(|a| match a {
                Assembled::Frame(f) => Some(f.iter().map(|p| p.sequence_number).collect()),
                Assembled::Gap { .. } => None,
            })
            .collect()
    }

    fn assembler() -> FrameAssembler {
        FrameAssembler::new(Duration::from_millis(200), 64)
    }

    #[test]
    fn in_order_packets_become_frames_at_the_marker() {
        let now = Instant::now();
        let mut a = assembler();
        assert!(a.push(now, pkt(10, 0, false)).is_empty());
        assert_eq!(frames(&a.push(now, pkt(11, 0, true))), vec![vec![10, 11]]);
        assert_eq!(frames(&a.push(now, pkt(12, 3000, true))), vec![vec![12]]);
        assert_eq!(a.deadline(), None);
    }

    #[test]
    fn a_reordered_packet_completes_the_frame_when_it_arrives() {
        let now = Instant::now();
        let mut a = assembler();
        a.push(now, pkt(10, 0, false));
        assert!(a.push(now, pkt(12, 0, true)).is_empty());
        assert!(a.push(now, pkt(13, 3000, true)).is_empty());
        let out = a.push(now, pkt(11, 0, false));
        assert_eq!(frames(&out), vec![vec![10, 11, 12], vec![13]]);
        assert_eq!(a.repaired(), 1);
    }

    #[test]
    fn a_frame_is_emitted_once_and_whole_whatever_order_its_packets_come_in() {
        // Every order of a six-packet frame, then the next frame: the scan remembered between
        // pushes must never skip a hole or emit early.
        let mut orders = vec![vec![]];
        for seq in 10..16u16 {
            orders = orders.into_iter().flat_map(|o: Vec<u16>| (0..=o.len()).map(move |i| [&o[..i], &[seq], &o[i..]].concat())).collect();
        }
        assert_eq!(orders.len(), 720);
        let now = Instant::now();
        for order in orders {
            let mut a = assembler();
            let mut out = a.push(now, pkt(9, 0, true));
            for &seq in &order {
                let emitted = a.push(now, pkt(seq, 3000, seq == 15));
                assert!(seq == *order.last().unwrap() || frames(&emitted).is_empty(), "{order:?}: emitted before its last packet");
                out.extend(emitted);
            }
            out.extend(a.push(now, pkt(16, 6000, true)));
            assert_eq!(frames(&out), vec![vec![9], (10..16).collect(), vec![16]], "{order:?}");
        }
    }

    #[test]
    fn a_lost_packet_drops_its_frame_after_the_wait_and_keeps_the_next() {
        let t0 = Instant::now();
        let mut a = assembler();
        a.push(t0, pkt(10, 0, false));
        // 11 is lost; 12 ends frame 0; 13..14 are frame 3000.
        a.push(t0, pkt(12, 0, true));
        a.push(t0, pkt(13, 3000, false));
        a.push(t0, pkt(14, 3000, true));
        assert!(a.poll(t0 + Duration::from_millis(100)).is_empty());
        let out = a.poll(t0 + Duration::from_millis(250));
        assert_eq!(out.first(), Some(&Assembled::Gap { lost_packets: 1 }));
        assert_eq!(frames(&out), vec![vec![13, 14]]);
    }

    #[test]
    fn a_gap_inside_the_next_frame_discards_the_whole_cut_frame() {
        let t0 = Instant::now();
        let mut a = assembler();
        a.push(t0, pkt(1, 0, true));
        // 2 (start of frame 3000) is lost; 3 and 4 are the rest of it; 5 is a new frame.
        a.push(t0, pkt(3, 3000, false));
        a.push(t0, pkt(4, 3000, true));
        a.push(t0, pkt(5, 6000, true));
        let out = a.poll(t0 + Duration::from_secs(1));
        assert_eq!(frames(&out), vec![vec![5]]);
    }

    #[test]
    fn late_and_duplicate_packets_are_ignored() {
        let now = Instant::now();
        let mut a = assembler();
        a.push(now, pkt(1, 0, true));
        assert!(a.push(now, pkt(1, 0, true)).is_empty());
        assert!(a.push(now, pkt(0, 0, true)).is_empty());
        assert_eq!(frames(&a.push(now, pkt(2, 3000, true))), vec![vec![2]]);
    }

    #[test]
    fn joining_mid_frame_skips_to_the_next_frame() {
        let now = Instant::now();
        let mut a = assembler();
        let middle = RtpPacket { payload: Bytes::from_static(&[0x7C, 0x05, 0]), ..pkt(7, 0, false) };
        assert!(a.push(now, middle).is_empty());
        assert!(a.push(now, pkt(8, 0, true)).is_empty());
        assert_eq!(frames(&a.push(now, pkt(9, 3000, true))), vec![vec![9]]);
    }

    #[test]
    fn a_frame_without_a_marker_ends_where_the_timestamp_changes() {
        let now = Instant::now();
        let mut a = assembler();
        a.push(now, pkt(1, 0, false));
        assert_eq!(frames(&a.push(now, pkt(2, 3000, true))), vec![vec![1], vec![2]]);
    }

    #[test]
    fn padding_between_frames_fills_sequence_numbers_and_is_dropped() {
        let now = Instant::now();
        let mut a = assembler();
        a.push(now, pkt(1, 0, true));
        let padding = RtpPacket { payload: Bytes::new(), ..pkt(2, 0, false) };
        assert!(a.push(now, padding).is_empty());
        assert_eq!(frames(&a.push(now, pkt(3, 3000, true))), vec![vec![3]]);
        assert_eq!(a.deadline(), None);
    }

    #[test]
    fn an_overfull_buffer_skips_the_gap_without_waiting() {
        let now = Instant::now();
        let mut a = FrameAssembler::new(Duration::from_secs(10), 4);
        a.push(now, pkt(1, 0, true));
        let mut out = Vec::new();
        for seq in 3..9u16 {
            out.extend(a.push(now, pkt(seq, u32::from(seq) * 3000, true)));
        }
        assert!(out.contains(&Assembled::Gap { lost_packets: 1 }));
        assert_eq!(frames(&out), vec![vec![4], vec![5], vec![6], vec![7], vec![8]]);
    }
}
