//! The RTMP side under a hostile or difficult ingest, with real processes on loopback: ingests
//! written in the test (`common::rtmp_server`) that attack the relay's RTMP client or pelt it
//! with control messages, ffmpeg as a one-connection ingest, our WHIP publisher.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::ingest::FfmpegIngest;
use common::probe::probe;
use common::rtmp_server::{Behaviour, TestIngest, chunk, continuation, deeply_nested_result, set_chunk_size};
use common::{Publisher, Relay, free_tcp_port, wait_until};

/// Waits for the `last_error` of the publisher's own destination (`ivsctl local` records to a
/// file besides), which must mention `expected`; returns that destination's status.
async fn wait_for_error(publisher: &Publisher, expected: &str) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let status = publisher.status().await;
        let client = status.as_ref().and_then(|s| s["destinations"].as_array()?.iter().find(|d| d["origin"] == "client").cloned());
        if let Some(client) = client.filter(|d| d["last_error"].as_str().is_some_and(|e| e.contains(expected))) {
            return client;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no `{expected}` error reported: {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An AMF0 command `onBWDone` padded to exactly `len` bytes: one a client does not wait for.
fn unsolicited_command(len: usize) -> Vec<u8> {
    let mut amf = vec![0x02, 0, 8];
    amf.extend_from_slice(b"onBWDone");
    amf.push(0x00);
    amf.extend_from_slice(&0f64.to_be_bytes());
    amf.push(0x05);
    let pad = len - amf.len() - 3;
    amf.extend_from_slice(&[0x02, (pad >> 8) as u8, pad as u8]);
    amf.resize(len, b'x');
    amf
}

#[tokio::test]
async fn a_hostile_ingest_ends_only_its_own_session_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    // About 1 MB of nested AMF0 objects, in one chunk: the unpatched decoder recursed until the
    // stack overflowed and the whole process aborted.
    let mut nested = set_chunk_size(0x7fff_ffff);
    let body = deeply_nested_result(250_000);
    nested.extend(chunk(3, 20, body.len(), &body));
    // A ping request on chunk stream 2 between the chunks of a command on chunk stream 3: the
    // unpatched deserializer shared one buffer between streams and underflowed its length
    // arithmetic. Patched, both arrive whole, and the session waits for a `connect` answer
    // that never comes.
    let command = unsolicited_command(300);
    let mut interleaved = chunk(3, 20, command.len(), &command[..128]);
    interleaved.extend(chunk(2, 4, 6, &[0, 6, 0, 0, 0, 1]));
    interleaved.extend(continuation(3, &command[128..256]));
    interleaved.extend(continuation(3, &command[256..]));
    // A message announced at 16 MiB: refused before it is buffered.
    let mut huge = set_chunk_size(0x7fff_ffff);
    huge.extend(chunk(3, 20, 16 * 1024 * 1024 - 1, &[0x05; 4096]));

    let hostile = [
        (TestIngest::start(Behaviour::Hostile(Arc::new(nested))).await, "nested deeper than 32"),
        (TestIngest::start(Behaviour::Hostile(Arc::new(interleaved))).await, "did not answer within"),
        (TestIngest::start(Behaviour::Hostile(Arc::new(huge))).await, "exceeds the limit"),
    ];
    let good = FfmpegIngest::start(free_tcp_port(), &dir.path().join("good.flv")).await;
    let ports: Vec<String> = hostile.iter().map(|(i, _)| i.port.to_string()).chain([good.port.to_string()]).collect();
    let relay = Relay::start(
        dir.path(),
        &["--allow-client-destination", "--allow-private-destinations", "--allowed-destination-port", &ports.join(",")],
    )
    .await;

    let healthy = Publisher::start(&relay.whip("healthy"), 14.0, &["--destination", &good.url()]).await.expect("accepted");
    let mut victims = Vec::new();
    for (n, (ingest, expected)) in hostile.iter().enumerate() {
        let publisher =
            Publisher::start(&relay.whip(&format!("victim{n}")), 30.0, &["--destination", &ingest.url("key")]).await.expect("accepted");
        victims.push((publisher, *expected));
    }
    for (publisher, expected) in &victims {
        let destination = wait_for_error(publisher, expected).await;
        let error = destination["last_error"].as_str().unwrap_or_default();
        assert!(error.starts_with("RTMP session error") || error.starts_with("ingest did not answer"), "{error}");
        assert_eq!(destination["state"], "reconnecting");
    }
    assert!(hostile.iter().all(|(i, _)| i.connections.load(Ordering::SeqCst) >= 1));
    for (mut publisher, _) in victims {
        publisher.kill();
    }
    healthy.finish().await;
    probe(&good.finished().await).assert_good(1280, 720, 14.0);
    assert_eq!(relay.metric("ivs_relay_sessions_started_total").await, 4.0, "the relay process survived");
}

#[tokio::test]
async fn an_answered_offer_that_never_connects_never_goes_live_at_the_ingest() {
    let dir = tempfile::tempdir().expect("tempdir");
    // ffmpeg takes one publisher: a session that opened the ingest without media used to take
    // it, and the real publisher after it was refused for its whole session.
    let ingest = FfmpegIngest::start(free_tcp_port(), &dir.path().join("ingest.flv")).await;
    let relay = Relay::start(dir.path(), &["--destination", &ingest.url()]).await;
    let unused = reqwest::Client::new()
        .post(relay.whip("abandoned"))
        .header("content-type", "application/sdp")
        .body(common::offer::h264_offer().await)
        .send()
        .await
        .expect("answer");
    assert_eq!(unused.status(), reqwest::StatusCode::CREATED);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let publisher = Publisher::start(&relay.whip("cam1"), 4.0, &[]).await.expect("accepted");
    publisher.finish().await;
    probe(&ingest.finished().await).assert_good(1280, 720, 4.0);
}

/// Waits until the relay's sent bytes have not grown for 1.5 s: its writes are blocked.
async fn writes_block(relay: &Relay, limit: Duration) -> bool {
    let started = std::time::Instant::now();
    let (mut sent, mut flat_since) = (0.0, started);
    while started.elapsed() < limit {
        let now = relay.metric("ivs_relay_ingest_sent_bytes_total").await;
        if now != sent {
            (sent, flat_since) = (now, std::time::Instant::now());
        } else if flat_since.elapsed() > Duration::from_millis(1500) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn control_messages_while_publishing_never_corrupt_what_the_ingest_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("pelted.flv");
    // A ping and a window acknowledgement size every 3 ms (the relay owes an acknowledgement
    // every few of them), and reads paced so that the relay's writes often wait: a reply must
    // never be cut in half, or dropped, by the next tag.
    let ingest = TestIngest::start(Behaviour::Record {
        out: out.clone(),
        ping_every: Duration::from_millis(3),
        read_pause: Duration::from_millis(4),
    })
    .await;
    let relay = Relay::start(dir.path(), &["--destination", &ingest.url("key")]).await;
    let publisher = Publisher::start(&relay.whip("cam1"), 60.0, &[]).await.expect("accepted");
    // Mid-stream the ingest stops reading until the relay's writes block (its sent bytes stop
    // growing), then reads again: while the backlog drains, every write waits, tags are always
    // ready, and the pings start again: a reply being written must survive the next tag.
    tokio::time::sleep(Duration::from_secs(12)).await;
    ingest.control.hold.store(true, Ordering::Relaxed);
    let blocked = writes_block(&relay, Duration::from_secs(25)).await;
    ingest.control.hold.store(false, Ordering::Relaxed);
    assert!(blocked, "the relay's writes never blocked on an ingest that stopped reading");
    publisher.finish().await;
    let written = wait_until(Duration::from_secs(15), || async { out.exists() }).await;
    assert!(written.is_some(), "the ingest never finished its recording; relay log:\n{}", relay.log());
    assert_eq!(ingest.connections.load(Ordering::SeqCst), 1, "the relay had to reconnect; relay log:\n{}", relay.log());
    // Every reply reached the ingest whole: a ping response or acknowledgement dropped half-way
    // (or whole: the next one's header is compressed against it) would garble chunk stream 2.
    let (pings, pongs, acks) = (
        ingest.control.pings_sent.load(Ordering::Relaxed),
        ingest.control.pongs.load(Ordering::Relaxed),
        ingest.control.acks.load(Ordering::Relaxed),
    );
    assert!(pings > 5000 && acks > 1000, "{pings} pings sent, {acks} acknowledgements received: the ingest did not pelt the relay");
    println!("control flood: {pings} pings, {pongs} answered, {acks} acknowledgements");
    assert!(pongs + 50 >= pings, "{pings} pings but only {pongs} ping responses: the relay lost replies");
    let decode =
        std::process::Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&out).args(["-f", "null", "-"]).output().expect("ffmpeg");
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(decode.status.success() && errors.trim().is_empty(), "the recording does not decode cleanly:\n{errors}");
    let recording = probe(&out);
    assert_eq!(recording.video_codec.as_deref(), Some("h264"));
    assert_eq!(recording.audio_codec.as_deref(), Some("aac"));
    assert!(recording.duration > 54.0, "only {} s recorded", recording.duration);
    recording.assert_monotonic();
}

#[tokio::test]
async fn a_session_ends_even_when_its_ingest_hung_mid_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Takes the publish, then reads nothing: the sink's next write blocks for good.
    let hung = TestIngest::start(Behaviour::Stall).await;
    let relay = Relay::start(dir.path(), &["--destination", &hung.url("key")]).await;
    let publisher = Publisher::start(&relay.whip("cam1"), 30.0, &[]).await.expect("accepted");
    let live = wait_until(Duration::from_secs(10), || async { publisher.status().await.is_some_and(|s| s["state"] == "live") }).await;
    assert!(live.is_some(), "never live: {:?}", publisher.status().await);
    // The kernel buffers a few MiB on loopback before the sink's write blocks: then what it has
    // sent stops growing.
    let sent = || async { publisher.status().await.and_then(|s| s["destinations"][0]["bytes_sent"].as_u64()).unwrap_or(0) };
    let started = std::time::Instant::now();
    let mut last = sent().await;
    loop {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = sent().await;
        if std::mem::replace(&mut last, now) == now && now > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(25), "the hung ingest never stopped taking data");
    }

    // DELETE ends the session: the sink cannot send deleteStream, so it is cut off after its
    // close deadline and the session is gone, its name free.
    let deleted = tokio::time::timeout(Duration::from_secs(15), reqwest::Client::new().delete(&publisher.session_url).send()).await;
    assert_eq!(deleted.expect("DELETE answered").expect("DELETE").status(), 200);
    assert!(relay.log().contains("a sink did not close in 5s; aborted"), "the abort did not happen:\n{}", relay.log());
    assert_eq!(relay.metric("ivs_relay_sessions").await, 0.0);
    assert_eq!(relay.metric("ivs_relay_destinations").await, 0.0);
    assert_eq!(relay.health().await["reserved"], 0, "the stream name is still held");
    drop(publisher);
}
