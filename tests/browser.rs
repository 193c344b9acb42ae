//! The web app in Debian's headless Chromium (driven by playwright-core, `tests/browser/`),
//! publishing through the relay: what a person pressing Go Live gets.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::{browser, event};
use common::ingest::FfmpegIngest;
use common::probe::probe;
use common::{Relay, free_tcp_port};

/// Where screenshots go: kept after the run for people to look at.
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output");
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}

/// A file `ffmpeg args… <name>` makes once per run (the extension of `name` picks the format).
fn generated(name: &str, args: &[&str]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if !path.exists() {
        let tmp = path.with_file_name(format!("tmp-{name}"));
        let status = std::process::Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).arg(&tmp).status().expect("ffmpeg");
        assert!(status.success());
        std::fs::rename(&tmp, &path).expect("rename");
    }
    path
}

/// A noisy 720p30 clip: Chromium's own fake camera compresses to ~0.75 Mbit/s whatever the
/// target, so the rate test needs a picture that costs bits.
fn noisy_720p() -> PathBuf {
    generated(
        "noisy-720p30.y4m",
        &["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=4,noise=alls=25:allf=t+u", "-pix_fmt", "yuv420p"],
    )
}

/// The machine's CPU: the tests that ask for the full frame rate of a software-rendered,
/// software-encoded 720p30 hold it alone (as a person's one browser would have it), the others
/// share it.
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

#[tokio::test]
async fn chromium_publishes_720p30_at_full_rate_to_an_rtmp_ingest() {
    let _machine = MACHINE.write().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = FfmpegIngest::start(free_tcp_port(), &dir.path().join("ingest.flv")).await;
    let relay = Relay::start(dir.path(), &["--destination", &ingest.url()]).await;
    let clip = noisy_720p();
    let events = browser(&["--url", &format!("{}/?stream=cam1", relay.base), "--seconds", "12", "--video", &clip.to_string_lossy()]).await;
    let live_ms = event(&events, "stopped")["live_ms"].as_f64().expect("live_ms");

    let recording = probe(&ingest.finished().await);
    assert_eq!((recording.width, recording.height), (1280, 720));
    assert_eq!(recording.audio_codec.as_deref(), Some("aac"));
    assert_eq!(recording.audio_channels, Some(1), "Chromium offers mono and is not asked for stereo");
    recording.assert_monotonic();
    recording.assert_keyframes_within(2.0);
    let (fps, bps) = recording.video_rate_over_last(4.0);
    assert!(fps >= 25.0, "only {fps:.1} fps reached the ingest over the last 4 s");
    assert!(bps >= 1.5e6, "only {:.2} Mbit/s reached the ingest over the last 4 s", bps / 1e6);
    assert!(recording.duration >= live_ms / 1000.0 * 0.9, "{} s recorded of {live_ms} ms live", recording.duration);
    // Chromium's RTCP sender reports reached the session (audio and video on one timeline).
    for track in ["video", "audio"] {
        let reports = relay.labelled_metric("ivs_relay_sender_reports_total", &format!("track=\"{track}\"")).await.unwrap_or(0.0);
        assert!(reports >= 1.0, "no {track} sender report from Chromium in {live_ms} ms");
    }
}

#[tokio::test]
async fn the_web_app_records_with_ivsctl_local_and_shows_it_is_live() {
    let _machine = MACHINE.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]).await;
    let screenshot = out_dir().join("web-app-live.png");
    let events =
        browser(&["--url", &format!("{}/?stream=studio", relay.base), "--seconds", "6", "--screenshot", &screenshot.to_string_lossy()])
            .await;
    let shown = &event(&events, "stats")["shown"];
    assert_eq!(shown["st-state"], "live");
    assert_eq!(shown["st-resolution"], "1280×720");
    let live_s = event(&events, "stopped")["live_ms"].as_f64().expect("live_ms") / 1000.0;

    let recordings: Vec<_> = std::fs::read_dir(dir.path().join("recordings")).expect("recordings").flatten().map(|e| e.path()).collect();
    assert_eq!(recordings.len(), 1);
    let recording = probe(&recordings[0]);
    assert_eq!(recording.video_codec.as_deref(), Some("h264"));
    assert_eq!(recording.audio_codec.as_deref(), Some("aac"));
    // "live" shows once the relay reports it (polled each second), so the recording may start
    // up to a second before the page's clock does.
    assert!((recording.duration - live_s).abs() <= live_s * 0.1 + 1.0, "recorded {} s, live {live_s} s", recording.duration);
    assert!(screenshot.exists());
}

#[tokio::test]
async fn a_wrong_token_and_a_stopped_relay_are_explained_in_the_page() {
    let _machine = MACHINE.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--token", "right-token"]).await;
    let events = browser(&["--url", &format!("{}/?stream=cam1", relay.base), "--token", "wrong", "--expect", "message"]).await;
    let text = event(&events, "message")["text"].as_str().unwrap_or_default().to_owned();
    assert!(text.contains("refused the access token (401)"), "{text}");

    // The page is served, then the relay goes away before Go Live.
    let pid = relay.child.id().expect("relay running").to_string();
    let events =
        browser(&["--url", &format!("{}/?stream=cam1", relay.base), "--token", "right-token", "--expect", "message", "--kill-pid", &pid])
            .await;
    let text = event(&events, "message")["text"].as_str().unwrap_or_default().to_owned();
    assert!(text.contains("unreachable"), "{text}");
}

#[tokio::test]
async fn the_watch_panel_plays_the_channel_and_shows_the_delay() {
    let _machine = MACHINE.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hls = dir.path().join("hls");
    std::fs::create_dir_all(&hls).expect("hls dir");
    // A live HLS stream with program date-times, as IVS serves it.
    let _encoder = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac", "-f", "hls", "-hls_time", "1", "-hls_list_size", "6"])
        .args(["-hls_flags", "delete_segments+program_date_time"])
        .arg(hls.join("live.m3u8"))
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg");
    let port = free_tcp_port();
    let conf = dir.path().join("nginx-hls.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; master_process off; pid {d}/nginx-hls.pid; error_log {d}/nginx-hls-error.log;\nevents {{}}\n\
             http {{ access_log off; types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}\n\
             server {{ listen 127.0.0.1:{port}; root {d}/hls; add_header Access-Control-Allow-Origin *; add_header Cache-Control no-cache; }} }}\n",
            d = dir.path().display()
        ),
    )
    .expect("nginx conf");
    let _nginx = common::ingest::nginx(&conf, dir.path());
    common::ingest::wait_listening(port).await;
    assert!(common::wait_until(Duration::from_secs(15), || async { hls.join("live.m3u8").exists() }).await.is_some(), "no HLS playlist");

    let playback = format!("http://127.0.0.1:{port}/live.m3u8");
    let relay = Relay::start(dir.path(), &["--playback-url", &playback]).await;
    let events = browser(&["--url", &format!("{}/", relay.base), "--expect", "player"]).await;
    let player = event(&events, "player");
    let delay = player["delay"].as_str().unwrap_or_default();
    let seconds: f64 = delay.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no delay shown: {delay:?}"));
    // ffmpeg stamps segments as it writes them; a player a few segments behind the live edge
    // of 1 s segments is 1-15 s behind.
    assert!((0.5..15.0).contains(&seconds), "delay {delay:?}");
    assert!(player["current_time"].as_f64() > Some(1.0));
}

#[tokio::test]
async fn the_web_app_publishes_to_two_added_destinations_shows_both_live_and_removes_one_while_live() {
    let _machine = MACHINE.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = FfmpegIngest::start(free_tcp_port(), &dir.path().join("first.flv")).await;
    let second = FfmpegIngest::start(free_tcp_port(), &dir.path().join("second.flv")).await;
    let ports = format!("{},{}", first.port, second.port);
    let relay =
        Relay::start(dir.path(), &["--allow-client-destination", "--allow-private-destinations", "--allowed-destination-port", &ports])
            .await;
    let screenshot = out_dir().join("web-app-destinations.png");
    #[rustfmt::skip]
    let events = browser(&[
        "--url", &format!("{}/?stream=multi", relay.base), "--seconds", "10",
        "--destination", &first.url(), "--destination", &second.url(), "--remove-last-after", "4",
        "--screenshot", &screenshot.to_string_lossy(),
    ]).await;

    // The relay's own recording, then the page's two, each shown live.
    let listed = event(&events, "destinations")["listed"].as_array().cloned().unwrap_or_default();
    let hosts: Vec<&str> = listed.iter().filter_map(|d| d["host"].as_str()).collect();
    let (first_host, second_host) = (format!("127.0.0.1:{}", first.port), format!("127.0.0.1:{}", second.port));
    assert_eq!(hosts.len(), 3, "{listed:?}");
    assert!(hosts.ends_with(&[first_host.as_str(), second_host.as_str()]), "{listed:?}");
    assert!(listed.iter().all(|d| d["state"] == "live"), "{listed:?}");
    assert!(!listed.iter().any(|d| d["text"].as_str().is_some_and(|t| t.contains(common::ingest::STREAM_KEY))), "the page shows a key");
    let removed = event(&events, "removed");
    assert_eq!(removed["listed"].as_array().map(Vec::len), Some(2), "{removed}");
    let live_s = event(&events, "stopped")["live_ms"].as_f64().expect("live_ms") / 1000.0;

    // The removed one ended cleanly mid-stream (ffmpeg exits on deleteStream); the other has it all.
    let second = probe(&second.finished().await);
    let first = probe(&first.finished().await);
    for recording in [&first, &second] {
        assert_eq!((recording.video_codec.as_deref(), recording.audio_codec.as_deref()), (Some("h264"), Some("aac")));
        recording.assert_monotonic();
        recording.assert_keyframes_within(2.0);
    }
    assert!((first.duration - live_s).abs() <= live_s * 0.1 + 1.0, "first: {} s of {live_s} s live", first.duration);
    let removed_at = removed["at_ms"].as_f64().unwrap_or_default() / 1000.0;
    assert!((second.duration - removed_at).abs() <= 1.5, "second: {} s, removed after {removed_at} s", second.duration);
}

/// A clip of one solid colour (the camera, told apart from Chromium's green fake screen).
fn solid(colour: &str, width: u32, height: u32) -> PathBuf {
    let source = format!("color=c={colour}:size={width}x{height}:rate=30:duration=2");
    generated(&format!("{colour}-{width}x{height}.y4m"), &["-f", "lavfi", "-i", &source, "-pix_fmt", "yuv420p"])
}

/// A WAV of `filter` (an ffmpeg audio source), for the fake microphone.
fn wav(name: &str, filter: &str) -> PathBuf {
    generated(&format!("{name}.wav"), &["-f", "lavfi", "-i", filter, "-t", "10", "-ac", "2", "-ar", "48000"])
}

/// The RGB of the pixel at (`x`, `y`) of the frame `at_end` seconds before the end of `recording`.
fn pixel(recording: &Path, at_end: f64, x: u32, y: u32) -> [u8; 3] {
    let crop = format!("format=rgb24,crop=1:1:{x}:{y}");
    let output = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-sseof", &format!("-{at_end}"), "-i"])
        .arg(recording)
        .args(["-frames:v", "1", "-vf", &crop, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg");
    assert!(output.status.success() && output.stdout.len() == 3, "{}", String::from_utf8_lossy(&output.stderr));
    [output.stdout[0], output.stdout[1], output.stdout[2]]
}

#[tokio::test]
async fn the_studio_switches_camera_screen_and_overlay_on_one_session_with_the_camera_where_it_was_placed() {
    let _machine = MACHINE.write().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = FfmpegIngest::start(free_tcp_port(), &dir.path().join("ingest.flv")).await;
    let relay = Relay::start(dir.path(), &["--destination", &ingest.url()]).await;
    let camera = solid("red", 1280, 720);
    #[rustfmt::skip]
    let events = browser(&[
        "--url", &format!("{}/?stream=studio", relay.base), "--seconds", "14", "--video", &camera.to_string_lossy(),
        "--corner", "tl", "--size", "0.3", "--switch", "screen,overlay", "--switch-every", "3",
        "--screenshots", &out_dir().to_string_lossy(),
    ]).await;
    for switched in events.iter().filter(|e| e["event"] == "switched") {
        assert_eq!(switched["state"], "live", "{switched}");
        assert!(switched["message"].is_null(), "{switched}");
    }
    // One session all along: each switch replaced the track, none made a new session.
    assert_eq!(relay.metric("ivs_relay_sessions_started_total").await, 1.0);

    let path = ingest.finished().await;
    let recording = probe(&path);
    assert_eq!((recording.width, recording.height), (1280, 720));
    assert_eq!(recording.audio_codec.as_deref(), Some("aac"));
    recording.assert_monotonic();
    // From 1.5 s on, before the first switch at 3 s: a busy CI machine's software-rendered
    // Chromium sometimes pauses 0.5-0.9 s right after its first frames (seen at 0.64 s into the
    // recording), which is the browser starting, not what switching costs.
    recording.assert_continuous_from(1.5, 0.5);
    let (fps, _) = recording.video_rate_over_last(4.0);
    assert!(fps >= 25.0, "the overlay reached the ingest at {fps:.1} fps");

    // The last frames are the overlay: the camera (red) in the top-left 30 %, the screen (the
    // fake green pattern) around it. The first seconds were the camera alone.
    let (margin, width, height) = (26, 384, 216); // 2 % of 1280, 30 % of 1280, at 16:9
    let is_red = |[r, g, b]: [u8; 3]| r > 180 && g < 90 && b < 90;
    let is_green = |[r, g, b]: [u8; 3]| g > 100 && r < 120 && b < 120;
    let inside = pixel(&path, 1.0, margin + width / 2, margin + height / 2);
    assert!(is_red(inside), "no camera where the overlay was placed: {inside:?}");
    let outside = pixel(&path, 1.0, 1280 - margin - width / 2, 720 - margin - height / 2);
    assert!(is_green(outside), "no screen beside the overlay: {outside:?}");
    let first = pixel(&path, recording.duration - 0.5, 640, 360);
    assert!(is_red(first), "the stream did not start on the camera: {first:?}");
    for mode in ["screen", "overlay"] {
        assert!(out_dir().join(format!("web-app-{mode}.png")).exists());
    }
}

#[tokio::test]
async fn the_microphone_meter_moves_with_a_tone_and_warns_after_five_silent_seconds() {
    let _machine = MACHINE.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]).await;
    let url = format!("{}/", relay.base);
    let tone = wav("tone-440", "sine=frequency=440:sample_rate=48000");
    let events = browser(&["--url", &url, "--expect", "meter", "--seconds", "3", "--audio", &tone.to_string_lossy()]).await;
    let meter = event(&events, "meter");
    // A -18 dBFS tone, through the browser's echo cancelling and noise suppression: well above -42 dBFS.
    assert!(meter["max"].as_f64() > Some(0.3), "the meter did not move with the tone: {meter}");
    assert!(meter["warning"].is_null(), "{meter}");

    // On a phone-sized screen: the warning shows and nothing needs scrolling sideways.
    let silence = wav("silence", "anullsrc=sample_rate=48000");
    let phone = out_dir().join("web-app-phone.png");
    #[rustfmt::skip]
    let events = browser(&[
        "--url", &url, "--expect", "meter", "--seconds", "7", "--audio", &silence.to_string_lossy(),
        "--viewport", "390x844", "--screenshot", &phone.to_string_lossy(),
    ]).await;
    let meter = event(&events, "meter");
    assert!(meter["max"].as_f64() < Some(0.1), "the meter moved on silence: {meter}");
    assert!(meter["warning"].as_str().is_some_and(|w| w.contains("silent for 5 seconds")), "{meter}");
    assert!(meter["overflow"].as_f64() <= Some(0.0), "the page is wider than a phone's screen: {meter}");
    assert!(phone.exists());
}

#[tokio::test]
async fn the_page_publishes_again_on_its_own_when_the_relay_comes_back() {
    let _machine = MACHINE.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, udp) = (free_tcp_port().to_string(), common::free_udp_port().to_string());
    let listen = format!("127.0.0.1:{port}");
    let first = FfmpegIngest::start(free_tcp_port(), &dir.path().join("first.flv")).await;
    let second_port = free_tcp_port();
    let relay = Relay::start(dir.path(), &["--listen", &listen, "--udp-port", &udp, "--destination", &first.url()]).await;
    let screenshot = out_dir().join("web-app-reconnect.png").to_string_lossy().into_owned();
    let url = format!("{}/?stream=blip", relay.base);
    let page =
        tokio::spawn(
            async move { browser(&["--url", &url, "--expect", "reconnect", "--seconds", "22", "--screenshot", &screenshot]).await },
        );
    let live = common::wait_until(Duration::from_secs(30), || async { relay.metric("ivs_relay_sessions").await == 1.0 }).await;
    assert!(live.is_some(), "the page never went live");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The relay is gone for 5 s, then back on the same ports with a new ingest behind it.
    let mut relay = relay;
    relay.child.kill().await.expect("kill");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = FfmpegIngest::start(second_port, &dir.path().join("second.flv")).await;
    let back = Relay::start(dir.path(), &["--listen", &listen, "--udp-port", &udp, "--destination", &second.url()]).await;

    let events = page.await.expect("browser");
    let reconnecting = event(&events, "reconnecting")["message"].as_str().unwrap_or_default().to_owned();
    assert!(reconnecting.contains("Reconnecting (try"), "{reconnecting}");
    let again = event(&events, "live-again");
    assert!(again["reconnects"].as_str().and_then(|n| n.parse::<u32>().ok()) >= Some(1), "{again}");
    let second = probe(&second.finished().await);
    assert_eq!((second.video_codec.as_deref(), second.audio_codec.as_deref()), (Some("h264"), Some("aac")));
    second.assert_keyframes_within(2.0); // it starts with a keyframe
    assert!(second.duration > 3.0, "after the reconnect only {} s arrived", second.duration);
    // From the new session's answer to its first keyframe leaving for the ingest.
    let first_keyframe = back.metric("ivs_relay_first_keyframe_seconds_sum").await;
    assert_eq!(back.metric("ivs_relay_first_keyframe_seconds_count").await, 1.0);
    assert!(first_keyframe <= 2.0, "the first keyframe after the reconnect took {first_keyframe:.2} s");
}
