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
async fn a_page_on_another_origin_may_publish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(dir.path(), &[]).await;
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
        ("rtmp://127.0.0.1:1935/live/key", "loopback, private"),
        ("rtmp://localhost/live/key", "loopback, private"),
        ("rtmps://169.254.169.254:443/app/key", "link-local"),
        ("rtmp://10.0.0.5/live/key", "private"),
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
