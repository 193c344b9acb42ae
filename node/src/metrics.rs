//! Prometheus metrics of the relay, served on `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::media::clock::Track;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrackLabel {
    pub track: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndLabel {
    pub reason: &'static str,
}

/// A destination's host (and port) or file path: never its stream key.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabel {
    pub destination: String,
}

/// How many distinct destination hosts get a label of their own; the rest share `other`, so
/// publishers choosing ever new hosts cannot grow `/metrics` without bound.
const MAX_DESTINATION_LABELS: usize = 256;

const VIDEO: TrackLabel = TrackLabel { track: "video" };
const AUDIO: TrackLabel = TrackLabel { track: "audio" };

pub struct Metrics {
    registry: Registry,
    pub sessions: Gauge,
    pub sessions_started: Counter,
    pub sessions_ended: Family<EndLabel, Counter>,
    pub bytes_received: Counter,
    pub bytes_sent: Family<DestinationLabel, Counter>,
    pub keyframe_requests: Counter,
    pub rtmp_reconnects: Family<DestinationLabel, Counter>,
    /// Destinations open now, over all sessions.
    pub destinations: Gauge,
    labelled_hosts: std::sync::Mutex<std::collections::HashSet<String>>,
    pub dropped_frames: Counter,
    pub lost_packets: Counter,
    pub repaired_packets: Counter,
    /// Opus packets dropped because their session was a whole queue behind on its audio worker.
    pub audio_dropped: Counter,
    /// Sessions whose Opus → AAC transcoder lives on an audio worker now.
    pub audio_transcoders: Gauge,
    /// Time from the RTP packet that completed a frame to its FLV tag leaving for the ingest.
    relay_latency: Family<TrackLabel, Histogram>,
    /// `relay_latency`'s two series, looked up once rather than for every tag.
    pub video_latency: Histogram,
    pub audio_latency: Histogram,
    /// RTCP sender reports that reached the sessions, per track: what puts audio and video on
    /// one timeline (NTP ↔ RTP time). None for a track means it is placed by arrival alone.
    sender_reports: Family<TrackLabel, Counter>,
    /// Time from a session's start (its offer answered) to its first keyframe leaving for the ingest.
    pub first_keyframe: Histogram,
    /// What the media thread does; datagrams per wake-up is what receive moderation buys.
    pub media: MediaCounters,
}

/// The media thread's counters (`transport`).
#[derive(Clone, Debug, Default)]
pub struct MediaCounters {
    pub wakeups: Counter,
    pub datagrams: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Upper bounds (seconds) of `relay_latency_seconds`, fine where each track's latency lies, so a
/// quantile read from them says where it lies rather than which wide bucket holds it.
#[rustfmt::skip]
const LATENCY_BUCKETS: [f64; 38] = [
    // Video: a receive-moderation window (2 ms by default) plus the work of a turn; the target
    // is 5 ms at p99.
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.00125, 0.0015, 0.00175, 0.002, 0.0025, 0.003,
    0.0035, 0.004, 0.0045, 0.005, 0.0075, 0.01, 0.02,
    // Audio: the codecs' framing alone puts it at 60–80 ms (README, "Benchmark").
    0.03, 0.035, 0.04, 0.045, 0.05, 0.055, 0.06, 0.065, 0.07, 0.075, 0.08, 0.085, 0.09, 0.095,
    0.1, 0.11, 0.12, 0.15, 0.25, 0.5,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ivs_relay");
        let relay_latency = Family::<TrackLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let video_latency = relay_latency.get_or_create(&VIDEO).clone();
        let audio_latency = relay_latency.get_or_create(&AUDIO).clone();
        let metrics = Self {
            sessions: Gauge::default(),
            sessions_started: Counter::default(),
            sessions_ended: Family::default(),
            bytes_received: Counter::default(),
            bytes_sent: Family::default(),
            keyframe_requests: Counter::default(),
            rtmp_reconnects: Family::default(),
            destinations: Gauge::default(),
            labelled_hosts: std::sync::Mutex::default(),
            dropped_frames: Counter::default(),
            lost_packets: Counter::default(),
            repaired_packets: Counter::default(),
            audio_dropped: Counter::default(),
            audio_transcoders: Gauge::default(),
            relay_latency,
            video_latency,
            audio_latency,
            sender_reports: Family::default(),
            // 0.1 s .. 10 s: the target on loopback is 1.5 s.
            first_keyframe: Histogram::new([0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]),
            media: MediaCounters::default(),
            registry: Registry::default(),
        };
        registry.register("sessions", "WHIP sessions open now", metrics.sessions.clone());
        registry.register("sessions_started", "WHIP sessions accepted", metrics.sessions_started.clone());
        registry.register("sessions_ended", "WHIP sessions ended, by reason", metrics.sessions_ended.clone());
        registry.register("rtp_received_bytes", "RTP payload bytes received from publishers", metrics.bytes_received.clone());
        registry.register("ingest_sent_bytes", "FLV tag bytes sent, per destination", metrics.bytes_sent.clone());
        registry.register("keyframe_requests", "PLIs sent to publishers", metrics.keyframe_requests.clone());
        registry.register(
            "rtmp_reconnects",
            "RTMP reconnect attempts after an ingest failed, per destination",
            metrics.rtmp_reconnects.clone(),
        );
        registry.register("destinations", "Destinations open now, over all sessions", metrics.destinations.clone());
        registry.register(
            "dropped_frames",
            "Video frames not forwarded (loss, damage, waiting for a keyframe, full queue)",
            metrics.dropped_frames.clone(),
        );
        registry.register("lost_packets", "Video RTP packets given up on after the retransmission wait", metrics.lost_packets.clone());
        registry.register(
            "repaired_packets",
            "Video RTP packets that arrived after a later one, in time to complete their frame (NACK retransmissions, reordering)",
            metrics.repaired_packets.clone(),
        );
        registry.register(
            "audio_dropped_packets",
            "Opus packets dropped because their session was over a second behind on its audio worker",
            metrics.audio_dropped.clone(),
        );
        registry.register("audio_transcoders", "Opus to AAC transcoders on the audio workers now", metrics.audio_transcoders.clone());
        registry.register("sender_reports", "RTCP sender reports received from publishers, per track", metrics.sender_reports.clone());
        registry.register("relay_latency_seconds", "RTP in to FLV tag out, per track", metrics.relay_latency.clone());
        registry.register(
            "first_keyframe_seconds",
            "Offer answered to the session's first keyframe sent to the ingest",
            metrics.first_keyframe.clone(),
        );
        registry.register(
            "media_wakeups",
            "Times the media thread woke up (receive moderation keeps this below one per datagram)",
            metrics.media.wakeups.clone(),
        );
        registry.register("media_datagrams", "Datagrams read from the WebRTC media socket", metrics.media.datagrams.clone());
        Self { registry, ..metrics }
    }

    /// Counts a publisher's RTCP sender report for `track` that reached its session.
    pub fn sender_report_received(&self, track: Track) {
        let label = match track {
            Track::Video => &VIDEO,
            Track::Audio => &AUDIO,
        };
        self.sender_reports.get_or_create(label).inc();
    }

    /// The label for a destination host: its own while fewer than `MAX_DESTINATION_LABELS`
    /// hosts have one, `other` after that.
    pub fn destination_label(&self, host: &str) -> DestinationLabel {
        let mut hosts = self.labelled_hosts.lock().unwrap_or_else(|p| p.into_inner());
        let destination = if hosts.contains(host) || (hosts.len() < MAX_DESTINATION_LABELS && hosts.insert(host.to_owned())) {
            host.to_owned()
        } else {
            "other".to_owned()
        };
        DestinationLabel { destination }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket (its upper bound) `seconds` is counted in.
    fn bucket_of(seconds: f64) -> f64 {
        LATENCY_BUCKETS.iter().copied().find(|&upper| seconds <= upper).unwrap_or(f64::INFINITY)
    }

    #[test]
    fn latency_buckets_tell_apart_what_the_benchmark_reports() {
        // Video inside a 2 ms moderation window, and just either side of the 5 ms target.
        let video = [0.0009, 0.0014, 0.0019, 0.0024, 0.0044, 0.0049, 0.0051];
        // Audio across the codecs' 60–80 ms, below and above it, 5 ms apart.
        let audio: Vec<f64> = (0..14).map(|n| 0.0375 + 0.005 * f64::from(n)).collect();
        for values in [&video[..], &audio[..]] {
            for pair in values.windows(2) {
                assert_ne!(bucket_of(pair[0]), bucket_of(pair[1]), "{} s and {} s share a bucket", pair[0], pair[1]);
            }
        }
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]), "bounds ascend");
    }

    #[test]
    fn destination_hosts_beyond_the_label_limit_share_one_label() {
        let metrics = Metrics::new();
        for n in 0..MAX_DESTINATION_LABELS {
            assert_eq!(metrics.destination_label(&format!("host{n}:1935")).destination, format!("host{n}:1935"));
        }
        assert_eq!(metrics.destination_label("one-too-many:1935").destination, "other");
        assert_eq!(metrics.destination_label("host0:1935").destination, "host0:1935");
    }
}
