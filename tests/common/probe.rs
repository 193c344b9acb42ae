//! What a viewer would check of a recording, through ffprobe.

use std::path::Path;

use serde_json::Value;

#[derive(Debug)]
pub struct Probe {
    pub video_codec: Option<String>,
    pub width: u64,
    pub height: u64,
    pub audio_codec: Option<String>,
    pub audio_profile: Option<String>,
    pub audio_channels: Option<u64>,
    pub duration: f64,
    /// (pts seconds, keyframe, bytes) of each video packet, in file order.
    pub video_packets: Vec<(f64, bool, u64)>,
    pub audio_pts: Vec<f64>,
}

pub fn probe(path: &Path) -> Probe {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_format", "-show_packets", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "ffprobe failed on {}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
    let json: Value = serde_json::from_slice(&output.stdout).expect("ffprobe JSON");
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    let stream = |kind: &str| streams.iter().find(|s| s["codec_type"] == kind).cloned();
    let video = stream("video");
    let audio = stream("audio");
    let index_of = |s: &Option<Value>| s.as_ref().and_then(|s| s["index"].as_u64());
    let (vi, ai) = (index_of(&video), index_of(&audio));
    let packets = json["packets"].as_array().cloned().unwrap_or_default();
    let pts = |p: &Value| p["pts_time"].as_str().and_then(|t| t.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let size = |p: &Value| p["size"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let video_packets = packets
        .iter()
        .filter(|p| p["stream_index"].as_u64() == vi)
        .map(|p| (pts(p), p["flags"].as_str().unwrap_or("").contains('K'), size(p)))
        .collect();
    let audio_pts = packets.iter().filter(|p| p["stream_index"].as_u64() == ai).map(pts).collect();
    Probe {
        video_codec: video.as_ref().and_then(|v| v["codec_name"].as_str().map(str::to_owned)),
        width: video.as_ref().and_then(|v| v["width"].as_u64()).unwrap_or(0),
        height: video.as_ref().and_then(|v| v["height"].as_u64()).unwrap_or(0),
        audio_codec: audio.as_ref().and_then(|a| a["codec_name"].as_str().map(str::to_owned)),
        audio_profile: audio.as_ref().and_then(|a| a["profile"].as_str().map(str::to_owned)),
        audio_channels: audio.as_ref().and_then(|a| a["channels"].as_u64()),
        duration: json["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0),
        video_packets,
        audio_pts,
    }
}

impl Probe {
    /// The checks every recording must pass: H.264 of `width`x`height` and AAC-LC, a duration
    /// within 10 % of `seconds`, keyframes at most 2 s apart, timestamps that never go back.
    pub fn assert_good(&self, width: u64, height: u64, seconds: f64) {
        assert_eq!(self.video_codec.as_deref(), Some("h264"), "{self:?}");
        assert_eq!((self.width, self.height), (width, height));
        assert_eq!(self.audio_codec.as_deref(), Some("aac"));
        assert_eq!(self.audio_profile.as_deref(), Some("LC"));
        assert!((self.duration - seconds).abs() <= seconds * 0.1, "duration {} s, expected {seconds} s ± 10 %", self.duration);
        self.assert_monotonic();
        self.assert_keyframes_within(2.0);
        let audio_span = self.audio_pts.last().copied().unwrap_or(0.0) - self.audio_pts.first().copied().unwrap_or(0.0);
        assert!((audio_span - seconds).abs() <= seconds * 0.15, "audio spans {audio_span} s of {seconds} s");
    }

    pub fn assert_monotonic(&self) {
        for pair in self.video_packets.windows(2) {
            assert!(pair[1].0 > pair[0].0, "video timestamps go back or repeat: {pair:?}");
        }
        for pair in self.audio_pts.windows(2) {
            assert!(pair[1] > pair[0], "audio timestamps go back or repeat: {pair:?}");
        }
    }

    /// No gap in either track longer than `max_gap` seconds: nothing was lost on the way.
    pub fn assert_continuous(&self, max_gap: f64) {
        self.assert_continuous_from(f64::NEG_INFINITY, max_gap);
    }

    /// The same, for what starts at `from` seconds or later.
    pub fn assert_continuous_from(&self, from: f64, max_gap: f64) {
        // The longest gap and where it starts: a gap at a switch and one at the start (a
        // browser still warming up) have different causes.
        let gaps = |pts: Vec<f64>| {
            pts.windows(2).filter(|p| p[0] >= from).map(|p| (p[1] - p[0], p[0])).fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
        };
        let (video, video_at) = gaps(self.video_packets.iter().map(|p| p.0).collect());
        let (audio, audio_at) = gaps(self.audio_pts.clone());
        assert!(
            video <= max_gap && audio <= max_gap,
            "gaps of {video:.3} s (video, after {video_at:.3} s) and {audio:.3} s (audio, after {audio_at:.3} s) of {:.3} s, more than {max_gap} s",
            self.duration
        );
    }

    pub fn assert_keyframes_within(&self, max_gap: f64) {
        let keyframes: Vec<f64> = self.video_packets.iter().filter(|p| p.1).map(|p| p.0).collect();
        assert!(!keyframes.is_empty(), "no keyframes");
        assert_eq!(self.video_packets.first().map(|p| p.1), Some(true), "the first video packet is not a keyframe");
        for pair in keyframes.windows(2) {
            assert!(pair[1] - pair[0] <= max_gap + 0.05, "keyframes {:.3} s apart: {keyframes:?}", pair[1] - pair[0]);
        }
    }

    /// Frames per second and bits per second of video over the last `window` seconds.
    pub fn video_rate_over_last(&self, window: f64) -> (f64, f64) {
        let end = self.video_packets.last().map(|p| p.0).unwrap_or(0.0);
        let recent = self.video_packets.iter().filter(|p| p.0 > end - window);
        let (frames, bytes) = recent.fold((0u64, 0u64), |(f, b), p| (f + 1, b + p.2));
        (frames as f64 / window, bytes as f64 * 8.0 / window)
    }
}
