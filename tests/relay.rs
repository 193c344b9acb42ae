//! The streaming path end to end with real processes on loopback: our WHIP publisher (the
//! `webrtc` crate) → `ivsctl local` (the relay) → a file, ffmpeg's RTMP listener, or nginx
//! terminating TLS in front of it; then ffprobe of what arrived.

mod common;

use std::time::Duration;

use common::ingest::{FfmpegIngest, STREAM_KEY, TlsProxy};
use common::probe::probe;
use common::{MEDIA_SECONDS, Publisher, Relay, free_tcp_port, session_status, wait_until};

#[tokio::test]
async fn publishing_to_the_default_file_destination_records_h264_and_aac() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]).await;
    let publisher = Publisher::start(&relay.whip("cam1"), MEDIA_SECONDS, &[]).await.expect("session accepted");
    publisher.finish().await;

    let recordings: Vec<_> =
        std::fs::read_dir(dir.path().join("recordings")).expect("recordings dir").flatten().map(|e| e.path()).collect();
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let name = recordings[0].file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    assert!(name.starts_with("cam1-") && name.ends_with(".flv"), "{name}");
    probe(&recordings[0]).assert_good(1280, 720, MEDIA_SECONDS);
    assert_eq!(relay.metric("ivs_relay_sessions").await, 0.0);
}

#[tokio::test]
async fn publishing_over_rtmp_reaches_the_ingest_and_never_logs_the_stream_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = FfmpegIngest::start(free_tcp_port(), &dir.path().join("ingest.flv")).await;
    let relay = Relay::start(dir.path(), &["--destination", &ingest.url()]).await;
    let publisher = Publisher::start(&relay.whip("cam1"), MEDIA_SECONDS, &[]).await.expect("session accepted");

    let status = wait_until(Duration::from_secs(5), || async { publisher.status().await.is_some_and(|s| s["state"] == "live") }).await;
    assert!(status.is_some(), "session never went live: {:?}", publisher.status().await);
    let report = publisher.status().await.expect("status");
    let shown = report.to_string();
    assert!(!shown.contains(STREAM_KEY), "status shows the stream key: {shown}");
    assert_eq!(report["destination"], format!("127.0.0.1:{}", ingest.port));

    publisher.finish().await;
    let recording = ingest.finished().await;
    probe(&recording).assert_good(1280, 720, MEDIA_SECONDS);
    assert!(!relay.log().contains(STREAM_KEY), "the relay logged the stream key");
}

#[tokio::test]
async fn rtmps_to_a_tls_ingest_trusting_a_given_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = FfmpegIngest::start(free_tcp_port(), &dir.path().join("ingest.flv")).await;
    let proxy = TlsProxy::start(dir.path(), "localhost", free_tcp_port(), ingest.port).await;
    let destination = format!("rtmps://localhost:{}/live/{STREAM_KEY}", proxy.port);
    let ca = proxy.ca.to_string_lossy().into_owned();
    let relay = Relay::start(dir.path(), &["--destination", &destination, "--ingest-ca", &ca]).await;
    let publisher = Publisher::start(&relay.whip("cam1"), 4.0, &[]).await.expect("session accepted");
    publisher.finish().await;
    probe(&ingest.finished().await).assert_good(1280, 720, 4.0);
}

#[tokio::test]
async fn rtmps_to_an_untrusted_certificate_is_refused_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = FfmpegIngest::start(free_tcp_port(), &dir.path().join("ingest.flv")).await;
    let proxy = TlsProxy::start(dir.path(), "localhost", free_tcp_port(), ingest.port).await;
    let destination = format!("rtmps://localhost:{}/live/{STREAM_KEY}", proxy.port);
    let relay = Relay::start(dir.path(), &["--destination", &destination]).await;
    let mut publisher = Publisher::start(&relay.whip("cam1"), 10.0, &[]).await.expect("session accepted");
    let reported = wait_until(Duration::from_secs(5), || async {
        publisher
            .status()
            .await
            .is_some_and(|s| s["state"] == "reconnecting" && s["last_error"].as_str().is_some_and(|e| e.contains("certificate")))
    })
    .await;
    assert!(reported.is_some(), "status: {:?}", publisher.status().await);
    publisher.kill();
}

#[tokio::test]
async fn an_ingest_that_dies_mid_stream_is_reconnected_and_the_session_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_tcp_port();
    let first = FfmpegIngest::start(port, &dir.path().join("first.flv")).await;
    let relay = Relay::start(dir.path(), &["--destination", &first.url()]).await;
    let publisher = Publisher::start(&relay.whip("cam1"), 12.0, &[]).await.expect("session accepted");
    let live = || async { publisher.status().await.is_some_and(|s| s["state"] == "live") };
    assert!(wait_until(Duration::from_secs(5), live).await.is_some());
    tokio::time::sleep(Duration::from_secs(2)).await;

    first.kill().await;
    let reconnecting =
        wait_until(Duration::from_secs(5), || async { publisher.status().await.is_some_and(|s| s["state"] == "reconnecting") }).await;
    assert!(reconnecting.is_some(), "status: {:?}", publisher.status().await);
    let second = FfmpegIngest::start(port, &dir.path().join("second.flv")).await;
    assert!(wait_until(Duration::from_secs(8), live).await.is_some(), "never live again: {:?}", publisher.status().await);
    let status = publisher.status().await.expect("same session still there");
    assert!(status["reconnects"].as_u64() >= Some(1));

    publisher.finish().await;
    let second = probe(&second.finished().await);
    assert_eq!(second.video_codec.as_deref(), Some("h264"));
    assert_eq!(second.audio_codec.as_deref(), Some("aac"));
    assert!(second.duration > 3.0, "after the reconnect only {} s arrived", second.duration);
    second.assert_monotonic();
    second.assert_keyframes_within(2.0);
    assert!(relay.metric("ivs_relay_rtmp_reconnects_total").await >= 1.0);
}

#[tokio::test]
async fn a_killed_publisher_frees_its_session_within_10_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]).await;
    let mut publisher = Publisher::start(&relay.whip("cam1"), 30.0, &[]).await.expect("session accepted");
    assert!(
        wait_until(Duration::from_secs(5), || async { publisher.status().await.is_some_and(|s| s["state"] == "live") }).await.is_some()
    );
    publisher.kill();
    let url = publisher.session_url.clone();
    let gone = wait_until(Duration::from_secs(10), || async { session_status(&url).await.is_none() }).await;
    assert!(gone.is_some(), "session still there 10 s after its publisher died");
    assert_eq!(relay.metric("ivs_relay_sessions").await, 0.0);
    // The stream name is free again.
    let again = Publisher::start(&relay.whip("cam1"), 1.0, &[]).await.expect("stream usable again");
    again.finish().await;
}

#[tokio::test]
async fn sigterm_ends_sessions_cleanly_and_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = FfmpegIngest::start(free_tcp_port(), &dir.path().join("ingest.flv")).await;
    let relay = Relay::start(dir.path(), &["--destination", &ingest.url()]).await;
    let mut publisher = Publisher::start(&relay.whip("cam1"), 30.0, &[]).await.expect("session accepted");
    assert!(
        wait_until(Duration::from_secs(5), || async { publisher.status().await.is_some_and(|s| s["state"] == "live") }).await.is_some()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = relay.terminate().await;
    assert!(status.success(), "relay exit: {status}");
    // The ingest saw the stream end (deleteStream + close) and finished a playable file.
    let recording = probe(&ingest.finished().await);
    assert_eq!(recording.video_codec.as_deref(), Some("h264"));
    assert!(recording.duration > 1.5);
    publisher.kill();
}

#[tokio::test]
async fn https_with_a_certificate_made_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--https"]).await;
    assert!(relay.base.starts_with("https://"), "{}", relay.base);
    let publisher = Publisher::start(&relay.whip("cam1"), 2.0, &[]).await.expect("session accepted over HTTPS");
    publisher.finish().await;
    let recordings: Vec<_> = std::fs::read_dir(dir.path().join("recordings")).expect("recordings").flatten().collect();
    assert_eq!(recordings.len(), 1);
}
