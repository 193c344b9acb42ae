//! One timeline for both tracks. Each track's RTP clock (90 kHz video, 48 kHz audio) is mapped
//! to microseconds since the session's first packet. Video is anchored at its first packet's
//! arrival; once both tracks have an RTCP sender report, audio is re-anchored through the
//! sender's NTP clock so that lip sync is the sender's, not the network's.
//!
//! A timestamp more than `MAX_JUMP_SECONDS` from the track's last one (a restarted encoder, or
//! a hostile one) re-anchors the track at the packet's arrival instead of moving the timeline
//! by the jump; the arithmetic is widened and saturating, so no input can overflow it.
//!
//! Time comes in as arguments; nothing here reads the clock.

use std::time::Instant;

use super::rtp::TimestampUnwrapper;

pub const VIDEO_CLOCK_RATE: u32 = 90_000;
pub const AUDIO_CLOCK_RATE: u32 = 48_000;
/// A timestamp step larger than this, either way, resynchronises the track.
pub const MAX_JUMP_SECONDS: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

/// An RTP timestamp pinned to a point of the timeline.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    rtp: i64,
    micros: i64,
}

/// The last RTCP sender report of a track: the sender's wall clock (NTP) at an RTP timestamp.
#[derive(Debug, Clone, Copy)]
struct SenderReport {
    ntp: u64,
    rtp: i64,
}

#[derive(Debug)]
struct TrackClock {
    rate: i64,
    unwrapper: TimestampUnwrapper,
    anchor: Option<Anchor>,
    report: Option<SenderReport>,
    /// The last extended timestamp seen.
    last: Option<i64>,
}

impl TrackClock {
    fn new(rate: u32) -> Self {
        Self { rate: rate.into(), unwrapper: TimestampUnwrapper::new(), anchor: None, report: None, last: None }
    }

    fn micros_at(&self, anchor: Anchor, rtp: i64) -> i64 {
        let offset = i128::from(rtp) - i128::from(anchor.rtp);
        let micros = i128::from(anchor.micros) + offset * 1_000_000 / i128::from(self.rate);
        micros.clamp(i64::MIN.into(), i64::MAX.into()) as i64
    }

    /// Whether `rtp` is further than `MAX_JUMP_SECONDS` from the last timestamp.
    fn jumped(&self, rtp: i64) -> bool {
        self.last.is_some_and(|last| rtp.abs_diff(last) > (MAX_JUMP_SECONDS * self.rate) as u64)
    }
}

#[derive(Debug)]
pub struct Timeline {
    origin: Option<Instant>,
    video: TrackClock,
    audio: TrackClock,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

/// Signed difference `a - b` of two NTP timestamps (32.32 fixed point), in microseconds.
fn ntp_diff_micros(a: u64, b: u64) -> i64 {
    let diff = a.wrapping_sub(b) as i64;
    ((i128::from(diff) * 1_000_000 + (1 << 31)) >> 32) as i64
}

impl Timeline {
    pub fn new() -> Self {
        Self { origin: None, video: TrackClock::new(VIDEO_CLOCK_RATE), audio: TrackClock::new(AUDIO_CLOCK_RATE) }
    }

    fn clock(&mut self, track: Track) -> &mut TrackClock {
        match track {
            Track::Video => &mut self.video,
            Track::Audio => &mut self.audio,
        }
    }

    /// Extends a packet's RTP timestamp; the track's first packet pins it to `now`, and so
    /// does a packet after a jump.
    pub fn extend(&mut self, track: Track, now: Instant, rtp: u32) -> i64 {
        let origin = *self.origin.get_or_insert(now);
        let clock = self.clock(track);
        let rtp = clock.unwrapper.unwrap(rtp.into());
        let here = Anchor { rtp, micros: i64::try_from(now.saturating_duration_since(origin).as_micros()).unwrap_or(i64::MAX) };
        if clock.jumped(rtp) {
            tracing::debug!(?track, "RTP timestamp jumped; track resynchronised");
            clock.anchor = Some(here);
            clock.report = None; // its RTP timestamp belongs to the old timeline
        }
        clock.anchor.get_or_insert(here);
        clock.last = Some(rtp);
        rtp
    }

    /// Where an extended RTP timestamp of `track` sits on the timeline (µs); `None` before
    /// the track's first packet.
    pub fn micros(&self, track: Track, rtp: i64) -> Option<i64> {
        let clock = match track {
            Track::Video => &self.video,
            Track::Audio => &self.audio,
        };
        clock.anchor.map(|anchor| clock.micros_at(anchor, rtp))
    }

    /// `extend` then `micros`, for a packet.
    pub fn position(&mut self, track: Track, now: Instant, rtp: u32) -> i64 {
        let rtp = self.extend(track, now, rtp);
        self.micros(track, rtp).unwrap_or(0)
    }

    /// Takes an RTCP sender report (NTP time, RTP timestamp) of one track.
    pub fn sender_report(&mut self, track: Track, ntp: u64, rtp: u32) {
        let clock = self.clock(track);
        if clock.anchor.is_none() {
            return; // nothing to align yet; the next report will do
        }
        let rtp = clock.unwrapper.unwrap(rtp.into());
        if clock.jumped(rtp) {
            return; // a report that does not describe the packets we get
        }
        clock.report = Some(SenderReport { ntp, rtp });
        self.align_audio_to_video();
    }

    fn align_audio_to_video(&mut self) {
        let (Some(video_anchor), Some(video_sr), Some(audio_sr)) = (self.video.anchor, self.video.report, self.audio.report) else {
            return;
        };
        let video_sr_micros = self.video.micros_at(video_anchor, video_sr.rtp);
        let audio_sr_micros = video_sr_micros.saturating_add(ntp_diff_micros(audio_sr.ntp, video_sr.ntp));
        self.audio.anchor = Some(Anchor { rtp: audio_sr.rtp, micros: audio_sr_micros });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NTP_SECOND: u64 = 1 << 32;

    #[test]
    fn each_track_advances_at_its_own_clock_rate() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        assert_eq!(timeline.position(Track::Video, t0, 1000), 0);
        assert_eq!(timeline.position(Track::Video, t0, 1000 + 90_000), 1_000_000);
        assert_eq!(timeline.position(Track::Audio, t0 + Duration::from_millis(20), 5), 20_000);
        assert_eq!(timeline.position(Track::Audio, t0, 5 + 960), 40_000);
    }

    #[test]
    fn positions_survive_the_rtp_timestamp_wrap() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        timeline.position(Track::Video, t0, u32::MAX - 2999);
        assert_eq!(timeline.position(Track::Video, t0, 3000), 66_666);
    }

    #[test]
    fn sender_reports_put_audio_where_the_sender_captured_it() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        // Video starts at t0; audio's first packet arrives 100 ms later, but the sender says it
        // was captured 40 ms after video's first frame.
        timeline.position(Track::Video, t0, 0);
        timeline.position(Track::Audio, t0 + Duration::from_millis(100), 0);
        let ntp0 = 1000 * NTP_SECOND;
        timeline.sender_report(Track::Video, ntp0, 0);
        timeline.sender_report(Track::Audio, ntp0 + NTP_SECOND / 25, 0);
        assert_eq!(timeline.position(Track::Audio, t0, 0), 40_000);
        assert_eq!(timeline.position(Track::Audio, t0, 48_000), 1_040_000);
    }

    #[test]
    fn a_jump_of_more_than_ten_seconds_resynchronises_at_the_arrival_time() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        assert_eq!(timeline.position(Track::Video, t0, 0), 0);
        assert_eq!(timeline.position(Track::Video, t0 + Duration::from_secs(1), 90_000), 1_000_000);
        // An hour ahead in RTP time, one more second of wall time: placed at 2 s, not at 1 h.
        let later = 90_000 + 3600 * 90_000;
        assert_eq!(timeline.position(Track::Video, t0 + Duration::from_secs(2), later), 2_000_000);
        assert_eq!(timeline.position(Track::Video, t0 + Duration::from_secs(2), later + 9000), 2_100_000);
        // And back.
        assert_eq!(timeline.position(Track::Video, t0 + Duration::from_secs(3), 5), 3_000_000);
    }

    #[test]
    fn half_range_steps_forever_cannot_overflow_the_arithmetic() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        let mut rtp = 0u32;
        for n in 0..100_000u64 {
            rtp = rtp.wrapping_add(0x7fff_ffff);
            let position = timeline.position(Track::Audio, t0 + Duration::from_millis(n), rtp);
            assert!((0..=100_000_000).contains(&position), "{position}");
        }
        timeline.sender_report(Track::Audio, u64::MAX, rtp);
        timeline.sender_report(Track::Video, 0, 0);
    }

    #[test]
    fn ntp_differences_are_signed() {
        assert_eq!(ntp_diff_micros(NTP_SECOND, 2 * NTP_SECOND), -1_000_000);
        assert_eq!(ntp_diff_micros(NTP_SECOND / 2, 0), 500_000);
    }
}
