//! When to ask the publisher for a keyframe (an RTCP PLI). IVS wants one at least every 2 s,
//! and a WebRTC encoder sends one only when asked (after its first), so the relay asks ahead of
//! that deadline by as long as this publisher takes to answer. The time is learned from the
//! publisher's own answers. A browser on a busy machine or at the end of a long path takes
//! hundreds of milliseconds, so a fixed lead would miss the deadline for it or ask every
//! publisher too often.

use std::time::{Duration, Instant};

/// The shortest lead: what a nearby browser takes (a round trip, the next captured frame, and
/// pacing out a keyframe of 720p). Quicker answers never shorten the lead below it: a keyframe
/// that happened to arrive just after a request may not be an answer to it.
const SHORTEST_LEAD: Duration = Duration::from_millis(250);

/// The longest lead: never ask sooner than a second after the last keyframe, however slow the
/// answers, so a publisher that never answers costs a request per `retry`, not a keyframe flood.
const LONGEST_LEAD: Duration = Duration::from_millis(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeConfig {
    /// The longest wait between keyframes that the relay aims for (IVS's 2 s, less a margin for
    /// arrival jitter).
    pub deadline: Duration,
    /// How often an unanswered request is repeated.
    pub retry: Duration,
}

impl Default for KeyframeConfig {
    fn default() -> Self {
        Self { deadline: Duration::from_millis(1900), retry: Duration::from_millis(500) }
    }
}

#[derive(Debug)]
pub struct KeyframeRequests {
    config: KeyframeConfig,
    last_keyframe_at: Option<Instant>,
    last_request_at: Option<Instant>,
    /// The first request that no keyframe has followed yet: an answer counts from it, so lost
    /// requests count against the publisher's path as they do against the deadline.
    unanswered_since: Option<Instant>,
    /// How long before the deadline to ask.
    lead: Duration,
}

impl KeyframeRequests {
    pub fn new(config: KeyframeConfig) -> Self {
        Self { config, last_keyframe_at: None, last_request_at: None, unanswered_since: None, lead: SHORTEST_LEAD }
    }

    /// A keyframe arrived at `now`; if it answers a request, the lead learns from it: at once when
    /// the answer was slower (one slow answer is what misses the deadline), halfway when quicker.
    /// The stream's first keyframe answers nothing: the request made while it arrived (nothing
    /// was decodable yet) reached the encoder after it, and the keyframe that request brings is
    /// the first measure of this publisher, taken seconds before the first deadline.
    pub fn keyframe(&mut self, now: Instant) {
        let first = self.last_keyframe_at.replace(now).is_none();
        if first {
            return;
        }
        if let Some(asked) = self.unanswered_since.take() {
            let took = now.saturating_duration_since(asked);
            let learned = if took > self.lead { took } else { (self.lead + took) / 2 };
            self.lead = learned.clamp(SHORTEST_LEAD, LONGEST_LEAD);
        }
    }

    /// Whether to send a request at `now` (and if so it counts as sent): when the decoder's
    /// picture is broken (`in_sync` false) or the next keyframe is due within the lead, and the
    /// last request was at least `retry` ago.
    pub fn poll(&mut self, now: Instant, in_sync: bool) -> bool {
        let due = !in_sync || self.last_keyframe_at.is_some_and(|at| now >= at + self.ask_after());
        let retry_ok = self.last_request_at.is_none_or(|at| now >= at + self.config.retry);
        if due && retry_ok {
            self.last_request_at = Some(now);
            self.unanswered_since.get_or_insert(now);
        }
        due && retry_ok
    }

    /// When `poll` may next say yes.
    pub fn next_wake(&self) -> Option<Instant> {
        let retry = self.last_request_at.map(|at| at + self.config.retry);
        let due = self.last_keyframe_at.map(|at| at + self.ask_after());
        retry.max(due)
    }

    /// How long after a keyframe the next is asked for.
    pub fn ask_after(&self) -> Duration {
        self.config.deadline.saturating_sub(self.lead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_lead_grows_with_a_slow_answer_at_once_and_shrinks_halfway_with_a_quick_one() {
        let t0 = Instant::now();
        let mut requests = KeyframeRequests::new(KeyframeConfig::default());
        requests.keyframe(t0);
        assert_eq!(requests.ask_after(), 1650 * MS);
        let asked = t0 + 1650 * MS;
        assert!(!requests.poll(asked - MS, true));
        assert!(requests.poll(asked, true));
        assert!(!requests.poll(asked + 400 * MS, true), "a repeat waits for the retry");
        requests.keyframe(asked + 450 * MS);
        assert_eq!(requests.ask_after(), 1450 * MS, "learned 450 ms");
        let asked = asked + 450 * MS + 1450 * MS;
        assert!(requests.poll(asked, true));
        requests.keyframe(asked + 250 * MS);
        assert_eq!(requests.ask_after(), 1550 * MS, "halfway back: 350 ms");
    }

    #[test]
    fn the_first_keyframe_answers_nothing_and_the_next_one_measures_the_publisher() {
        let t0 = Instant::now();
        let mut requests = KeyframeRequests::new(KeyframeConfig::default());
        assert!(requests.poll(t0, false), "the first packet: nothing decodable, ask at once");
        requests.keyframe(t0 + 5 * MS);
        assert_eq!(requests.ask_after(), 1650 * MS, "the stream's own first keyframe");
        requests.keyframe(t0 + 420 * MS);
        assert_eq!(requests.ask_after(), 1480 * MS, "the answer: 420 ms after the request");
    }

    #[test]
    fn an_unanswered_request_is_repeated_and_the_answer_counts_from_the_first() {
        let t0 = Instant::now();
        let mut requests = KeyframeRequests::new(KeyframeConfig::default());
        requests.keyframe(t0);
        assert!(requests.poll(t0 + 100 * MS, false), "a frame lost: ask at once");
        assert!(!requests.poll(t0 + 599 * MS, false));
        assert!(requests.poll(t0 + 600 * MS, false));
        requests.keyframe(t0 + 800 * MS);
        assert_eq!(requests.ask_after(), 1200 * MS, "700 ms from the first request");
    }

    #[test]
    fn however_slow_the_answers_the_relay_asks_no_sooner_than_a_second_after_a_keyframe() {
        let t0 = Instant::now();
        let mut requests = KeyframeRequests::new(KeyframeConfig::default());
        requests.keyframe(t0);
        assert!(requests.poll(t0 + 100 * MS, false));
        requests.keyframe(t0 + 5000 * MS);
        assert_eq!(requests.ask_after(), 1000 * MS);
    }
}
