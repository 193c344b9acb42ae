//! The WHIP surface against bad and hostile requests: each gets its status and a one-line
//! reason, and none of them crashes the relay or leaks a session.

mod common;

use common::{Publisher, Relay, wait_until};
use reqwest::StatusCode;

const TOKEN: &str = "t0ken-for-tests-only";

/// A browser-shaped offer with VP8 video only.
const VP8_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=rtpmap:96 VP8/90000\r\n";

async fn post(
    url: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    token: Option<&str>,
    destination: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().post(url).header("content-type", content_type).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(destination) = destination {
        request = request.header("x-rtmp-destination", destination);
    }
    let response = request.send().await.expect("the relay answers");
    (response.status(), response.headers().clone(), response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn bad_requests_get_their_status_and_a_reason_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--token", TOKEN]).await;
    let url = relay.whip("cam1");
    let sdp = "application/sdp";

    let (status, headers, _) = post(&url, sdp, VP8_OFFER, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers.get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
    let (status, _, reason) = post(&url, sdp, VP8_OFFER, Some("guess"), None).await;
    assert_eq!((status, reason.trim()), (StatusCode::UNAUTHORIZED, "wrong bearer token"));

    let (status, _, reason) = post(&url, "application/json", "{}", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{reason}");

    let (status, _, reason) = post(&url, sdp, "this is not SDP \u{0}\u{1}", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.starts_with("malformed SDP offer"), "{reason}");

    let (status, _, reason) = post(&url, sdp, VP8_OFFER, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert!(reason.contains("no H.264"), "{reason}");

    let (status, ..) = post(&url, sdp, vec![b'v'; 1 << 20], Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, _, reason) = post(&relay.whip("bad%20name"), sdp, VP8_OFFER, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");

    let (status, _, reason) = post(&url, sdp, VP8_OFFER, Some(TOKEN), Some("rtmp://example.com/app/key")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(reason.contains("does not accept client-chosen destinations"), "{reason}");

    let client = reqwest::Client::new();
    let gone = format!("{url}/0123456789abcdef");
    assert_eq!(client.delete(&gone).bearer_auth(TOKEN).send().await.expect("answer").status(), StatusCode::NOT_FOUND);
    assert_eq!(client.delete(&gone).send().await.expect("answer").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(client.patch(&gone).bearer_auth(TOKEN).send().await.expect("answer").status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(client.put(&url).send().await.expect("answer").status(), StatusCode::METHOD_NOT_ALLOWED);

    let health = client.get(format!("{}/healthz", relay.base)).send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(relay.metric("ivs_relay_sessions").await, 0.0);
    assert!(!relay.log().contains(TOKEN), "the token reached the log");
}

#[tokio::test]
async fn a_page_on_another_origin_may_publish_to_a_relay_with_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--token", TOKEN]).await;
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, relay.whip("cam1"))
        .header("origin", "https://studio.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type, x-rtmp-destination")
        .send()
        .await
        .expect("preflight");
    assert!(response.status().is_success());
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    assert_eq!(header("access-control-allow-origin"), "*");
    assert!(header("access-control-allow-methods").contains("post"));
    assert!(header("access-control-allow-headers").contains("x-rtmp-destination"));

    // WHIP's own OPTIONS (no CORS preflight): what the endpoint accepts.
    let plain = reqwest::Client::new().request(reqwest::Method::OPTIONS, relay.whip("cam1")).send().await.expect("options");
    assert_eq!(plain.status(), StatusCode::NO_CONTENT);
    assert_eq!(plain.headers().get("accept-post").map(|v| v.as_bytes()), Some(&b"application/sdp"[..]));

    // The page can read Location, ETag and Link of the answer.
    let answer = reqwest::Client::new()
        .post(relay.whip("cam1"))
        .bearer_auth(TOKEN)
        .header("origin", "https://studio.example")
        .header("content-type", "application/sdp")
        .body(VP8_OFFER)
        .send()
        .await
        .expect("post");
    let exposed = answer.headers().get("access-control-expose-headers").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    for name in ["location", "etag", "link"] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
}

#[tokio::test]
async fn client_destinations_inside_the_relays_network_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--allow-client-destination"]).await;
    let url = relay.whip("cam1");
    for (destination, expected) in [
        ("rtmp://127.0.0.1:1935/live/key", "not allowed"),
        ("rtmp://localhost/live/key", "not allowed"),
        ("rtmps://169.254.169.254:443/app/key", "not allowed"),
        ("rtmp://10.0.0.5/live/key", "not allowed"),
        ("file:///etc/passwd", "must be rtmp"),
    ] {
        let (status, _, reason) = post(&url, "application/sdp", VP8_OFFER, None, Some(destination)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{destination}: {reason}");
        assert!(reason.contains(expected), "{destination}: {reason}");
    }
    let (status, _, reason) = post(&url, "application/sdp", VP8_OFFER, None, Some("ftp://host/x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
}

#[tokio::test]
async fn one_publisher_per_stream_and_a_full_relay_says_when_to_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--max-sessions", "1"]).await;
    let first = Publisher::start(&relay.whip("cam1"), 20.0, &[]).await.expect("first session accepted");
    assert!(wait_until(std::time::Duration::from_secs(5), || async { first.status().await.is_some() }).await.is_some());

    let same_stream = Publisher::start(&relay.whip("cam1"), 1.0, &[]).await.err().expect("second publisher on the stream refused");
    assert!(same_stream.contains("409"), "{same_stream}");

    let (status, headers, _) = post(&relay.whip("cam2"), "application/sdp", VP8_OFFER, None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("retry-after").is_some());
    drop(first);
}

#[tokio::test]
async fn a_relay_without_a_token_takes_only_its_own_pages_and_loopback_host_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]).await;
    let offer = common::offer::h264_offer().await;
    let client = reqwest::Client::new();
    let host = relay.base.trim_start_matches("http://").to_owned();
    for (header, value) in [("origin", "https://evil.example"), ("origin", "null"), ("host", "evil.example"), ("host", "evil.example:80")] {
        let response = client
            .post(relay.whip("cam1"))
            .header("content-type", "application/sdp")
            .header(header, value)
            .body(offer.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(response.headers().get("access-control-allow-origin").is_none(), "CORS granted to {value}");
    }
    // The relay's own page: same origin, answered.
    let own = client
        .post(relay.whip("cam1"))
        .header("content-type", "application/sdp")
        .header("origin", format!("http://{host}"))
        .body(offer)
        .send()
        .await
        .expect("answer");
    assert_eq!(own.status(), StatusCode::CREATED);
    // A preflight from another origin is not granted either.
    let preflight = client
        .request(reqwest::Method::OPTIONS, relay.whip("cam2"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.headers().get("access-control-allow-origin").is_none());
    // Nothing was recorded for the refused ones (and the answered one never sent media).
    assert!(!dir.path().join("recordings").exists());
}

#[tokio::test]
async fn the_web_app_is_served_with_a_content_security_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]).await;
    let page = reqwest::get(format!("{}/", relay.base)).await.expect("page");
    let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"), "{}", header("content-security-policy"));
    assert!(header("content-security-policy").contains("script-src 'self'"));
    assert_eq!(header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn a_destination_header_that_cannot_be_read_is_refused_never_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The relay has a default destination, which a bad header must not fall back to.
    let relay = Relay::start(dir.path(), &["--allow-client-destination", "--token", TOKEN]).await;
    let offer = common::offer::h264_offer().await;
    for value in [&b"rtmp://ingest.example/app/k\xc3\xa9y"[..], b"\xff\xfe", b"   "] {
        let response = reqwest::Client::new()
            .post(relay.whip("cam1"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/sdp")
            .header("x-rtmp-destination", reqwest::header::HeaderValue::from_bytes(value).expect("header bytes"))
            .body(offer.clone())
            .send()
            .await
            .expect("answer");
        let status = response.status();
        let reason = response.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value:?}: {reason}");
        assert!(reason.contains("X-RTMP-Destination"), "{reason}");
    }
    assert_eq!(relay.health().await["reserved"], 0);
    assert!(!dir.path().join("recordings").exists(), "the camera went to the default destination");
}

#[tokio::test]
async fn client_destinations_in_special_ranges_denied_networks_or_on_other_ports_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--allow-client-destination"]).await;
    // Each is refused before any session exists: the VP8 offer would be refused after the
    // guard anyway, so no request here can ever open a connection.
    for destination in [
        "rtmp://[::ffff:127.0.0.1]/live/key",
        "rtmp://[::7f00:1]/live/key",
        "rtmp://[::a9fe:a9fe]/live/key",
        "rtmp://[64:ff9b::a00:1]/live/key",
        "rtmp://[64:ff9b:1::a00:1]/live/key",
        "rtmp://[2002:a9fe:a9fe::1]/live/key",
        "rtmp://[fec0::1]/live/key",
        "rtmp://[2001:db8::1]/live/key",
        "rtmp://198.19.0.1/live/key",
        "rtmp://192.0.0.170/live/key",
        "rtmp://240.0.0.1/live/key",
        "rtmp://100.64.0.1/live/key",
    ] {
        let (status, _, reason) = post(&relay.whip("cam1"), "application/sdp", VP8_OFFER, None, Some(destination)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{destination}: {reason}");
        assert!(reason.contains("is not allowed"), "{destination}: {reason}");
    }
    // Ports outside the allow-list, even to a public address.
    let (status, _, reason) = post(&relay.whip("cam1"), "application/sdp", VP8_OFFER, None, Some("rtmp://52.94.1.1:22/live/key")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reason}");
    assert!(reason.contains("port 22 is not allowed (allowed: 1935, 443, 80)"), "{reason}");

    // --deny-cidr wins even where private destinations are allowed.
    let dir = tempfile::tempdir().expect("tempdir");
    let relay =
        Relay::start(dir.path(), &["--allow-client-destination", "--allow-private-destinations", "--deny-cidr", "127.0.0.0/8"]).await;
    let (status, _, reason) = post(&relay.whip("cam1"), "application/sdp", VP8_OFFER, None, Some("rtmp://localhost/live/key")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reason}");
    assert!(!reason.contains("127.0.0.1"), "the refusal names the internal address: {reason}");
    let (status, _, reason) = post(&relay.whip("cam1"), "application/sdp", VP8_OFFER, None, Some("rtmp://10.0.0.5/live/key")).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "allowed private address, then the offer's own refusal: {reason}");
}

/// UDP sockets on loopback that count the datagrams (ICE checks) they receive.
async fn counting_sockets(n: usize) -> (Vec<std::net::SocketAddr>, std::sync::Arc<std::sync::Mutex<std::collections::HashSet<usize>>>) {
    let hit = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let mut addrs = Vec::new();
    for i in 0..n {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        addrs.push(socket.local_addr().expect("addr"));
        let hit = hit.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while socket.recv_from(&mut buf).await.is_ok() {
                hit.lock().expect("lock").insert(i);
            }
        });
    }
    (addrs, hit)
}

#[tokio::test]
async fn an_offer_cannot_make_the_relay_probe_more_than_sixteen_or_any_private_candidates() {
    let offer = common::offer::h264_offer().await;
    let post_offer = |url: String, sdp: String| async move {
        reqwest::Client::new().post(url).header("content-type", "application/sdp").body(sdp).send().await.expect("answer").status()
    };
    // ivsctl local trusts loopback candidates, but uses 16 of the 40 at most.
    let dir = tempfile::tempdir().expect("tempdir");
    let local = Relay::start(dir.path(), &[]).await;
    let (addrs, hit) = counting_sockets(40).await;
    assert_eq!(post_offer(local.whip("cam1"), common::offer::with_candidates(&offer, &addrs)).await, StatusCode::CREATED);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let probed = hit.lock().expect("lock").len();
    assert!((1..=16).contains(&probed), "{probed} of 40 candidates probed");

    // The deployed relay sends nothing to candidates that are not public (all of these).
    let dir = tempfile::tempdir().expect("tempdir");
    let deployed = Relay::start_deployed(dir.path(), &["--destination", "file://./recordings/{stream}.flv"]).await;
    let (addrs, hit) = counting_sockets(40).await;
    assert_eq!(post_offer(deployed.whip("cam1"), common::offer::with_candidates(&offer, &addrs)).await, StatusCode::CREATED);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(hit.lock().expect("lock").len(), 0, "private candidates were probed");
}

#[tokio::test]
async fn forty_aborted_posts_leak_no_stream_names_sessions_or_file_descriptors() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--max-sessions", "5", "--posts-per-minute", "10000"]).await;
    let fds_before = relay.open_fds();
    let offer = common::offer::h264_offer().await;
    let host = relay.base.trim_start_matches("http://").to_owned();
    for i in 0..40usize {
        let stream = format!("s{}", i % 8);
        let mut socket = tokio::net::TcpStream::connect(&host).await.expect("connect");
        let head = format!(
            "POST /whip/{stream} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
            offer.len()
        );
        socket.write_all(head.as_bytes()).await.expect("write");
        // Some hang up mid-body; the others after the whole offer, at points from before the
        // answer is ready to well after it.
        if i % 5 == 0 {
            socket.write_all(&offer.as_bytes()[..offer.len() / 2]).await.expect("write");
        } else {
            socket.write_all(offer.as_bytes()).await.expect("write");
            // 0-9 ms: while the relay is making the answer, and just after.
            tokio::time::sleep(std::time::Duration::from_millis((i as u64 % 4) * 3)).await;
        }
        drop(socket);
    }
    let settled = wait_until(std::time::Duration::from_secs(10), || async {
        let health = relay.health().await;
        health["reserved"] == 0 && health["sessions"] == 0
    })
    .await;
    assert!(settled.is_some(), "names still held 10 s after the aborts: {}", relay.health().await);
    assert_eq!(relay.metric("ivs_relay_sessions").await, 0.0);
    // Every name can publish again: a POST for each is answered, not 409 or 503.
    for i in 0..8 {
        let (status, _, reason) = post(&relay.whip(&format!("s{i}")), "application/sdp", VP8_OFFER, None, None).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "s{i}: {reason}");
    }
    let publisher = Publisher::start(&relay.whip("s0"), 2.0, &[]).await.expect("a real publisher goes live on an aborted name");
    publisher.finish().await;
    let fds = wait_until(std::time::Duration::from_secs(10), || async { relay.open_fds() <= fds_before + 2 }).await;
    assert!(fds.is_some(), "{} file descriptors open, {fds_before} before", relay.open_fds());
}

#[tokio::test]
async fn slow_clients_without_a_token_are_closed_and_a_publisher_still_gets_in() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--token", TOKEN]).await;
    let host = relay.base.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for i in 0..300usize {
        let host = host.clone();
        clients.push(tokio::spawn(async move {
            let mut socket = tokio::net::TcpStream::connect(&host).await.ok()?;
            // Half trickle a body after complete headers, half never finish their headers.
            let head = if i % 2 == 0 {
                format!("POST /whip/cam{i} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/sdp\r\nContent-Length: 5000\r\n\r\n")
            } else {
                format!("POST /whip/cam{i} HTTP/1.1\r\nHost: {host}\r\n")
            };
            socket.write_all(head.as_bytes()).await.ok()?;
            let mut buf = [0u8; 1024];
            loop {
                let trickle = tokio::time::sleep(std::time::Duration::from_millis(500));
                tokio::select! {
                    read = socket.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return Some(started.elapsed()),
                        Ok(_) => {}
                    },
                    () = trickle => {
                        if socket.write_all(b"v").await.is_err() {
                            return Some(started.elapsed());
                        }
                    }
                }
                if started.elapsed() > std::time::Duration::from_secs(30) {
                    return None;
                }
            }
        }));
    }
    // A legitimate publisher while they hang on.
    let publisher = Publisher::start(&relay.whip("real"), 2.0, &["--token", TOKEN]).await.expect("the publisher gets its 201");
    for client in clients {
        let closed = client.await.expect("client task").expect("closed by the relay");
        assert!(closed < std::time::Duration::from_secs(15), "a slow client was held {closed:?}");
    }
    publisher.finish().await;
}

#[tokio::test]
async fn posts_beyond_the_per_address_rate_get_429_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &["--posts-per-minute", "6"]).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, headers, _) = post(&relay.whip("cam1"), "application/sdp", VP8_OFFER, None, None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(headers.get("retry-after").is_some());
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [StatusCode::NOT_ACCEPTABLE, StatusCode::NOT_ACCEPTABLE, StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS]
    );
}

#[tokio::test]
async fn an_empty_token_variable_or_a_broken_destination_stops_the_relay_and_keeps_the_key_out_of_its_output() {
    let relay = std::path::Path::new(env!("CARGO_BIN_EXE_ivsctl")).with_file_name("ivs-relay");
    // Both fail while reading the configuration, before anything listens.
    let empty_token = tokio::process::Command::new(&relay)
        .args(["--http", "--listen", "127.0.0.1:0", "--destination", "file://x.flv"])
        .env("IVS_RELAY_TOKEN", "")
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&empty_token.stderr);
    assert!(!empty_token.status.success(), "an empty token started the relay without auth");
    assert!(stderr.contains("empty"), "{stderr}");

    let broken = tokio::process::Command::new(&relay)
        .args(["--http", "--listen", "127.0.0.1:0"])
        .env("IVS_RELAY_DESTINATION", "rtmps://ingest.example/sk_live_s3cr3t")
        .output()
        .await
        .expect("runs");
    let output = format!("{}{}", String::from_utf8_lossy(&broken.stdout), String::from_utf8_lossy(&broken.stderr));
    assert!(!broken.status.success());
    assert!(output.contains("--destination #1 is not usable"), "{output}");
    assert!(!output.contains("s3cr3t"), "the stream key was printed: {output}");
}

#[tokio::test]
async fn the_answer_asks_for_stereo_audio_only_when_the_offer_sends_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]).await;
    let opus_format = |answer: &str| answer.lines().find(|l| l.starts_with("a=fmtp:111 ")).map(str::to_owned).unwrap_or_default();
    // Chromium's own Opus line: no stereo asked for, so it sends mono and the AAC is mono.
    let mono = common::offer::h264_offer().await;
    let (status, _, answer) = post(&relay.whip("mono"), "application/sdp", mono.clone(), None, None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(opus_format(&answer).starts_with("a=fmtp:111 minptime=10") && !answer.contains("stereo"), "{answer}");
    // OBS's (libdatachannel's default profile): the answer takes its format, stereo=1 with it,
    // so a stereo publisher sends stereo and the AAC is stereo.
    let obs = "a=fmtp:111 minptime=10;maxaveragebitrate=96000;stereo=1;sprop-stereo=1;useinbandfec=1";
    let stereo = mono.replace("a=fmtp:111 minptime=10;useinbandfec=1", obs);
    assert_ne!(stereo, mono, "the offer's Opus line is not webrtc-rs's any more");
    let (status, _, answer) = post(&relay.whip("stereo"), "application/sdp", stereo, None, None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(opus_format(&answer).split(';').any(|p| p == "stereo=1"), "{answer}");
}
