//! One WHIP session, several destinations, each on its own: our WHIP publisher → `ivsctl local`
//! → nginx-rtmp, ffmpeg behind TLS (rtmps://), a file, and what the publisher adds or removes
//! while live; then ffprobe of what each one recorded.

mod common;

use std::time::{Duration, Instant};

use common::ingest::{FfmpegIngest, NginxRtmp, STREAM_KEY, TlsProxy};
use common::probe::{Probe, probe};
use common::{Publisher, Relay, free_tcp_port, wait_until};
use serde_json::{Value, json};

/// Long enough for an ingest to be dead for 10 s and be reconnected (the backoff's steps after
/// 10 s of failures put the next try ~15.5 s after the failure) with a few seconds to spare.
const SECONDS: f64 = 26.0;
/// The test media is 30 fps.
const FPS: f64 = 30.0;

/// The destination of `status` whose host is `host`.
fn destination<'a>(status: &'a Value, host: &str) -> Option<&'a Value> {
    status["destinations"].as_array()?.iter().find(|d| d["host"] == host)
}

/// What a viewer of an ingest that never lost the stream sees: H.264 + AAC all along, no gap in
/// either track, and a frame for every 1/30 s of it.
fn assert_whole(recording: &Probe) {
    recording.assert_good(1280, 720, SECONDS);
    recording.assert_continuous(0.25);
    let span = recording.video_packets.last().map_or(0.0, |p| p.0) - recording.video_packets.first().map_or(0.0, |p| p.0);
    let frames = recording.video_packets.len() as f64;
    assert!(frames >= span * FPS * 0.97, "{frames} frames over {span:.2} s: frames went missing");
}

#[tokio::test]
async fn one_session_feeds_three_ingests_and_a_dead_refusing_or_removed_one_costs_the_others_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nginx = NginxRtmp::start(dir.path(), free_tcp_port()).await;
    let backend = free_tcp_port();
    let first = FfmpegIngest::start(backend, &dir.path().join("rtmps-1.flv")).await;
    let proxy = TlsProxy::start(dir.path(), "localhost", free_tcp_port(), backend).await;
    let added = FfmpegIngest::start(free_tcp_port(), &dir.path().join("added.flv")).await;
    let rtmps = format!("rtmps://localhost:{}/live/{STREAM_KEY}", proxy.port);
    let ca = proxy.ca.to_string_lossy().into_owned();
    let ports = format!("{},{}", nginx.port, added.port);
    #[rustfmt::skip]
    let relay = Relay::start(dir.path(), &[
        "--destination", &nginx.url(), "--destination", &rtmps, "--destination", "file://./recordings/{stream}.flv",
        "--ingest-ca", &ca,
        "--allow-client-destination", "--allow-private-destinations", "--allowed-destination-port", &ports,
    ]).await;
    let (nginx_host, rtmps_host, file_host) =
        (format!("127.0.0.1:{}", nginx.port), format!("localhost:{}", proxy.port), "./recordings/cam1.flv");

    // The publisher's own fourth destination names an application nginx does not have: nginx
    // hangs up at `connect`, which is how it refuses.
    let refused = format!("rtmp://127.0.0.1:{}/nope/{STREAM_KEY}", nginx.port);
    let publisher = Publisher::start(&relay.whip("cam1"), SECONDS, &["--destination", &refused]).await.expect("session accepted");
    let status = || async { publisher.status().await.unwrap_or_default() };
    let settled = wait_until(Duration::from_secs(10), || async {
        let s = status().await;
        [nginx_host.as_str(), rtmps_host.as_str(), file_host].iter().all(|h| destination(&s, h).is_some_and(|d| d["state"] == "live"))
            && s["destinations"].as_array().is_some_and(|all| all.iter().any(|d| d["origin"] == "client" && d["state"] == "failed"))
    })
    .await;
    let s = status().await;
    assert!(settled.is_some(), "not all live, or the refusal not seen: {s}");
    assert_eq!(s["state"], "live");
    let refusal = s["destinations"][3]["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(refusal.contains("refused") && refusal.contains("\"nope\""), "{refusal}");
    assert!(!s.to_string().contains(STREAM_KEY), "the status shows a stream key: {s}");

    // The rtmps:// ingest dies for 10 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill().await;
    let killed_at = Instant::now();
    let reconnecting = wait_until(Duration::from_secs(5), || async {
        destination(&status().await, &rtmps_host).is_some_and(|d| d["state"] == "reconnecting")
    })
    .await;
    assert!(reconnecting.is_some(), "the dead ingest is not reported: {}", status().await);

    // Meanwhile a destination is added: it starts at the next keyframe.
    let http = reqwest::Client::new();
    let add = http.post(format!("{}/destinations", publisher.session_url)).json(&json!({ "url": added.url() })).send().await.expect("POST");
    assert_eq!(add.status(), 201);
    let location = add.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    let added_report: Value = add.json().await.expect("JSON");
    assert_eq!(location, format!("destinations/{}", added_report["id"].as_str().unwrap_or_default()));
    assert!(!added_report.to_string().contains(STREAM_KEY), "{added_report}");
    let added_host = format!("127.0.0.1:{}", added.port);
    assert!(
        wait_until(Duration::from_secs(5), || async { destination(&status().await, &added_host).is_some_and(|d| d["state"] == "live") })
            .await
            .is_some(),
        "the added destination never went live: {}",
        status().await
    );

    tokio::time::sleep(Duration::from_secs(10).saturating_sub(killed_at.elapsed())).await;
    let second = FfmpegIngest::start(backend, &dir.path().join("rtmps-2.flv")).await;

    // Removing the added one ends its stream cleanly (ffmpeg exits on deleteStream); the others
    // go on.
    let remove = http.delete(format!("{}/{location}", publisher.session_url)).send().await.expect("DELETE");
    assert_eq!(remove.status(), 200);
    let added = probe(&added.finished().await);
    assert!(destination(&status().await, &added_host).is_none(), "a removed destination is still listed");
    let relay_own = http.delete(format!("{}/destinations/d1", publisher.session_url)).send().await.expect("DELETE");
    assert_eq!(relay_own.status(), 403, "the relay's own destination was removed by the publisher");

    let back =
        wait_until(Duration::from_secs(12), || async { destination(&status().await, &rtmps_host).is_some_and(|d| d["state"] == "live") })
            .await;
    assert!(back.is_some(), "the rtmps:// ingest was not reconnected: {}", status().await);
    let s = status().await;
    assert!(destination(&s, &rtmps_host).and_then(|d| d["reconnects"].as_u64()) >= Some(1), "{s}");
    assert_eq!(destination(&s, &nginx_host).map(|d| &d["reconnects"]), Some(&json!(0)), "{s}");
    publisher.finish().await;

    let nginx_recordings = nginx.recordings();
    assert_eq!(nginx_recordings.len(), 1, "nginx recorded more than one publish: {nginx_recordings:?}");
    assert_whole(&probe(&nginx_recordings[0]));
    assert_whole(&probe(&dir.path().join("recordings/cam1.flv")));

    let resumed = probe(&second.finished().await);
    assert_eq!((resumed.video_codec.as_deref(), resumed.audio_codec.as_deref()), (Some("h264"), Some("aac")));
    resumed.assert_keyframes_within(2.0); // its first video packet is a keyframe
    resumed.assert_monotonic();
    assert!(resumed.duration > 3.0, "after the reconnect only {} s arrived", resumed.duration);
    added.assert_keyframes_within(2.0);
    added.assert_monotonic();
    assert!(added.duration > 5.0, "the added destination got {} s", added.duration);

    let reconnects = relay.labelled_metric("ivs_relay_rtmp_reconnects_total", &format!("destination=\"{rtmps_host}\"")).await;
    assert!(reconnects >= Some(1.0), "{}", relay.metrics().await);
    let sent = relay.labelled_metric("ivs_relay_ingest_sent_bytes_total", &format!("destination=\"{nginx_host}\"")).await;
    assert!(sent > Some(1e6), "{}", relay.metrics().await);
    assert_eq!(relay.metric("ivs_relay_destinations").await, 0.0);
    assert!(!relay.log().contains(STREAM_KEY), "the relay logged a stream key");
    assert!(!relay.metrics().await.contains(STREAM_KEY), "/metrics shows a stream key");
}

#[tokio::test]
async fn more_destinations_than_the_limit_is_a_400_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--allow-client-destination", "--max-destinations", "2"]).await;
    let url = |n: u8| format!("rtmp://ingest{n}.example/live/key");
    let response = reqwest::Client::new()
        .post(relay.whip("cam1"))
        .header("content-type", "application/sdp")
        .header("x-rtmp-destination", format!("{}, {}", url(1), url(2)))
        .body(common::offer::h264_offer().await)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
    let reason = response.text().await.expect("body");
    assert!(
        reason.contains("3 destinations asked for (1 of the relay's, 2 in X-RTMP-Destination) but a session publishes to at most 2"),
        "{reason}"
    );
}
