//! The front door (the Lambda bootstrap behind a Function URL emulator) in front of real relays
//! on loopback that hold the pinned certificate, with the registry in moto's DynamoDB: sessions
//! spread over the relays, reach theirs afterwards, and never go to a relay that is draining,
//! dead, or not holding the certificate.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::browser::{browser, event};
use common::lambda::FunctionUrl;
use common::moto::Moto;
use common::probe::probe;
use common::{Publisher, Relay, free_tcp_port, insecure_client, wait_until};
use reqwest::StatusCode;
use tempfile::TempDir;

const TABLE: &str = "ivs-relays";
const TOKEN: &str = "front-door-token";

/// A relay certificate and key, as `ivsctl deploy` makes them.
fn relay_certificate() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["ivs-relay".to_owned()]).expect("certificate");
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

/// Everything around the relays: moto with the registry table, the certificate, the port every
/// relay listens on (each on its own loopback address, as each task has its own IP).
struct Stack {
    moto: Moto,
    dynamodb: aws_sdk_dynamodb::Client,
    cert: String,
    key: String,
    port: u16,
}

impl Stack {
    async fn start() -> Stack {
        let moto = Moto::start().await;
        let config = moto.sdk_config().await;
        common::moto::create_registry_table(&config, TABLE).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let (cert, key) = relay_certificate();
        Stack { moto, dynamodb, cert, key, port: free_tcp_port() }
    }

    /// A relay task on `ip` with the given certificate, recorded as running.
    async fn relay(&self, dir: &TempDir, task: &str, ip: &str, (cert, key): (&str, &str), extra: &[&str]) -> Relay {
        let listen = format!("{ip}:{}", self.port);
        // `=`: PEM text starts with dashes.
        let (cert, key) = (format!("--tls-cert-pem={cert}"), format!("--tls-key-pem={key}"));
        let mut args = vec!["--listen", &listen, &cert, &key, "--token", TOKEN];
        args.extend(["--destination", "file://./recordings/{stream}.flv"]);
        args.extend(extra);
        let relay = Relay::start_deployed_tls(dir.path(), &args).await;
        self.register(task, ip).await;
        relay
    }

    async fn register(&self, task: &str, ip: &str) {
        self.dynamodb
            .put_item()
            .table_name(TABLE)
            .item("task_arn", AttributeValue::S(format!("arn:aws:ecs:us-east-1:123456789012:task/ivs/{task}")))
            .item("status", AttributeValue::S("RUNNING".to_owned()))
            .item("last_version", AttributeValue::N("2".to_owned()))
            .item("public_ip", AttributeValue::S(ip.to_owned()))
            .send()
            .await
            .expect("registry row");
    }

    async fn front_door(&self) -> FunctionUrl {
        let mut env: Vec<(String, String)> = self.moto.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        env.extend([
            ("REGISTRY_TABLE".to_owned(), TABLE.to_owned()),
            ("RELAY_CERT".to_owned(), self.cert.clone()),
            ("RELAY_PORT".to_owned(), self.port.to_string()),
        ]);
        FunctionUrl::start(&env, 2).await
    }

    fn pair(&self) -> (&str, &str) {
        (&self.cert, &self.key)
    }
}

/// A WHIP POST of `offer` through the front door, with the token, as a raw HTTP client makes it.
async fn post_offer(front: &FunctionUrl, stream: &str, offer: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/whip/{stream}", front.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .expect("the front door answers")
}

fn recordings(dir: &TempDir) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.path().join("recordings")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

async fn sessions(relay: &Relay) -> u64 {
    relay.health().await["sessions"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn sessions_spread_over_two_relays_and_their_urls_reach_the_relay_that_holds_them() {
    let stack = Stack::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let relay_a = stack.relay(&dir_a, "task-a", "127.0.0.2", stack.pair(), &[]).await;
    let relay_b = stack.relay(&dir_b, "task-b", "127.0.0.3", stack.pair(), &[]).await;
    let front = stack.front_door().await;
    let http = reqwest::Client::new();

    // The page, from the front door itself, with the relay's protections.
    let page = http.get(format!("{}/", front.base)).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/html")));
    assert!(page.headers()["content-security-policy"].to_str().is_ok_and(|p| p.contains("frame-ancestors 'none'")));
    assert!(page.text().await.expect("html").contains("<title>"));
    let config: serde_json::Value =
        http.get(format!("{}/api/config", front.base)).send().await.expect("config").json().await.expect("json");
    assert_eq!(config["token_required"], true);
    let options = http.request(reqwest::Method::OPTIONS, format!("{}/whip/cam1", front.base)).send().await.expect("options");
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(options.headers()["accept-post"], "application/sdp");

    // The relay's refusals come through as the relay made them.
    let unauthorised = http.post(format!("{}/whip/cam1", front.base)).header("content-type", "application/sdp").body("v=0").send().await;
    let unauthorised = unauthorised.expect("answer");
    assert_eq!(unauthorised.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unauthorised.headers()["www-authenticate"], "Bearer");
    assert!(unauthorised.text().await.expect("reason").contains("missing bearer token"));

    let mut publishers = Vec::new();
    for n in 1..=4 {
        let url = format!("{}/whip/cam{n}", front.base);
        let publisher = Publisher::start(&url, 6.0, &["--token", TOKEN]).await.expect("session accepted through the front door");
        publishers.push(publisher);
    }
    assert_eq!((sessions(&relay_a).await, sessions(&relay_b).await), (2, 2), "four sessions spread two and two");
    for publisher in &publishers {
        let url = &publisher.session_url;
        assert!(url.starts_with(&front.base), "the session URL leaves the front door: {url}");
        let resource = url.rsplit('/').next().unwrap_or_default();
        assert!(!url.contains("127.0.0.") || url.starts_with(&front.base) && !url[front.base.len()..].contains("127.0.0."), "{url}");
        assert!(resource.split_once('.').is_some_and(|(tag, _)| tag.len() == 24), "{url}");
        let status = http.get(url).bearer_auth(TOKEN).send().await.expect("status");
        assert_eq!(status.status(), StatusCode::OK, "GET on the session through the front door");
        let status: serde_json::Value = status.json().await.expect("json");
        assert!(url.contains(&format!("/whip/{}/", status["stream"].as_str().unwrap_or("?"))), "{status}");
    }
    // One publisher per stream across the relays: whichever relay holds it says 409.
    let offer = common::offer::h264_offer().await;
    for n in 1..=4 {
        let again = post_offer(&front, &format!("cam{n}"), offer.clone()).await;
        assert_eq!(again.status(), StatusCode::CONFLICT, "cam{n} published twice");
        assert!(again.text().await.expect("reason").contains("already has a live session"));
    }
    assert_eq!((sessions(&relay_a).await, sessions(&relay_b).await), (2, 2));
    let unknown = format!("{}/whip/cam1/{}.{}", front.base, "0".repeat(24), "ab");
    assert_eq!(http.get(&unknown).bearer_auth(TOKEN).send().await.expect("answer").status(), StatusCode::NOT_FOUND);

    // Each publisher ends with DELETE on its front-door URL (it fails unless the answer is 200).
    for publisher in publishers {
        publisher.finish().await;
    }
    assert_eq!((sessions(&relay_a).await, sessions(&relay_b).await), (0, 0), "DELETE reached the relays");
    for dir in [&dir_a, &dir_b] {
        let recordings = recordings(dir);
        assert_eq!(recordings.len(), 2, "{recordings:?}");
        for recording in recordings {
            probe(&recording).assert_good(1280, 720, 6.0);
        }
    }
}

#[tokio::test]
async fn chromium_goes_live_through_the_front_door_url() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = stack.relay(&dir, "task-a", "127.0.0.2", stack.pair(), &[]).await;
    let front = stack.front_door().await;
    let events = browser(&["--url", &format!("{}/?stream=phone", front.base), "--token", TOKEN, "--seconds", "5"]).await;
    let shown = &event(&events, "stats")["shown"];
    assert_eq!(shown["st-state"], "live", "{events:?}");
    assert!(event(&events, "stopped")["live_ms"].as_f64() > Some(4000.0));
    // Stop sent DELETE through the front door: the relay has no session left.
    assert!(wait_until(Duration::from_secs(5), || async { sessions(&relay).await == 0 }).await.is_some());
    let recordings = recordings(&dir);
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let recording = probe(&recordings[0]);
    assert_eq!(recording.video_codec.as_deref(), Some("h264"));
    assert_eq!(recording.audio_codec.as_deref(), Some("aac"));
    assert!(recording.duration > 3.0, "{} s recorded", recording.duration);
}

#[tokio::test]
async fn draining_dead_and_impostor_relays_are_skipped_within_the_request() {
    let stack = Stack::start().await;
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let draining = stack.relay(&dirs[0], "task-a", "127.0.0.2", stack.pair(), &["--drain-seconds", "60"]).await;
    // A draining relay with nothing live exits at once; this one carries a session.
    let held = Publisher::start(&draining.whip("held"), 20.0, &["--token", TOKEN]).await.expect("accepted");
    let healthy = stack.relay(&dirs[1], "task-b", "127.0.0.3", stack.pair(), &[]).await;
    let (other_cert, other_key) = relay_certificate();
    let impostor = stack.relay(&dirs[2], "task-c", "127.0.0.4", (&other_cert, &other_key), &[]).await;
    stack.register("task-dead", "127.0.0.5").await; // nothing listens there
    let front = stack.front_door().await;

    draining.signal_term();
    let says_draining = wait_until(Duration::from_secs(3), || async {
        insecure_client()
            .get(format!("{}/healthz", draining.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(says_draining.is_some());

    // The impostor and the draining relay are the least loaded, and the dead one sorts first
    // by name: every session still lands on the one healthy relay holding the certificate.
    let first = Publisher::start(&format!("{}/whip/cam1", front.base), 4.0, &["--token", TOKEN]).await.expect("accepted");
    let second = Publisher::start(&format!("{}/whip/cam2", front.base), 4.0, &["--token", TOKEN]).await.expect("accepted");
    assert_eq!(sessions(&healthy).await, 2);
    assert_eq!(sessions(&impostor).await, 0, "the relay with another certificate was used");
    assert_eq!(sessions(&draining).await, 1, "only the session it had before the signal");
    first.finish().await;
    second.finish().await;

    // With the healthy relay gone too, the front door says why nobody can take the session.
    drop(healthy);
    let offer = common::offer::h264_offer().await;
    let response = post_offer(&front, "cam3", offer).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let reason = response.text().await.expect("reason");
    assert!(reason.contains("no relay can take the session") && reason.contains("1 draining"), "{reason}");
    assert!(!reason.contains("127.0.0."), "the refusal names internal addresses: {reason}");
    drop(held);
}

/// OBS's offer shape (libdatachannel): ICE credentials and fingerprint at session level, and
/// `a=group:LS` for lip sync.
fn obs_shaped(offer: &str) -> String {
    let session_level = |l: &str| l.starts_with("a=ice-ufrag:") || l.starts_with("a=ice-pwd:") || l.starts_with("a=fingerprint:");
    let lines: Vec<&str> = offer.lines().collect();
    let first_media = lines.iter().position(|l| l.starts_with("m=")).unwrap_or(lines.len());
    let mut moved: Vec<&str> = Vec::new();
    for line in &lines[first_media..] {
        if session_level(line) && !moved.iter().any(|m| m.split(':').next() == line.split(':').next()) {
            moved.push(line);
        }
    }
    let mut out = Vec::new();
    for line in &lines[..first_media] {
        out.push(line.to_string());
        if line.starts_with("a=group:BUNDLE") {
            out.push(format!("a=group:LS {}", line.trim_start_matches("a=group:BUNDLE ")));
        }
    }
    out.extend(moved.iter().map(|l| l.to_string()));
    out.extend(lines[first_media..].iter().filter(|l| !session_level(l)).map(|l| l.to_string()));
    out.join("\r\n") + "\r\n"
}

#[tokio::test]
async fn an_obs_shaped_offer_by_raw_http_gets_201_and_its_delete_200() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = stack.relay(&dir, "task-a", "127.0.0.2", stack.pair(), &[]).await;
    let front = stack.front_door().await;
    let offer = obs_shaped(&common::offer::h264_offer().await);
    assert!(offer.contains("a=group:LS") && offer.find("a=ice-ufrag").unwrap_or(usize::MAX) < offer.find("m=").unwrap_or(0), "{offer}");

    let http = reqwest::Client::new();
    let created = post_offer(&front, "obs", offer).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{:?}", created.text().await);
    let location = created.headers()["location"].to_str().expect("location").to_owned();
    assert!(created.headers().contains_key("etag"));
    assert!(created.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("application/sdp")));
    let answer = created.text().await.expect("answer");
    assert!(answer.contains("a=candidate:") && answer.contains("127.0.0.2"), "media goes to the relay itself:\n{answer}");
    assert_eq!(sessions(&relay).await, 1);

    let session = format!("{}{location}", front.base);
    // Trickle ICE: the relay's 405 and its Allow, through the front door.
    let patch = http.patch(&session).bearer_auth(TOKEN).header("content-type", "application/trickle-ice-sdpfrag").body("a=x\r\n");
    let patch = patch.send().await.expect("patch");
    assert_eq!(patch.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(patch.headers()["allow"], "GET, DELETE, OPTIONS");
    // The session's destinations are the relay's to answer for, through the front door too.
    let add = http.post(format!("{session}/destinations")).bearer_auth(TOKEN).json(&serde_json::json!({ "url": "rtmp://x.example/app/k" }));
    let add = add.send().await.expect("add");
    assert_eq!(add.status(), StatusCode::FORBIDDEN);
    assert!(add.text().await.expect("reason").contains("does not accept client-chosen destinations"));
    let remove = http.delete(format!("{session}/destinations/d1")).bearer_auth(TOKEN).send().await.expect("remove");
    assert_eq!(remove.status(), StatusCode::FORBIDDEN);
    assert!(remove.text().await.expect("reason").contains("relay's own destinations cannot be removed"));
    let deleted = http.delete(&session).bearer_auth(TOKEN).send().await.expect("delete");
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(sessions(&relay).await, 0);
}
