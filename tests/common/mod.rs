//! Shared helpers of the integration tests: real processes (the relay via `ivsctl local`, our
//! WHIP publisher example, ffmpeg/nginx ingests) on loopback, test media made by ffmpeg, and
//! ffprobe of what arrived.

#![allow(dead_code)] // each test binary uses its own subset

pub mod browser;
pub mod cli;
pub mod impair;
pub mod ingest;
pub mod lambda;
pub mod moto;
pub mod offer;
pub mod probe;
pub mod registry;
pub mod rtmp_server;
pub mod test_media;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A TCP port free right now on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free TCP port")
}

/// A UDP port free right now on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a free UDP port")
}

pub const MEDIA_SECONDS: f64 = 6.0;

/// The test media (`test_media`), `MEDIA_SECONDS` long, made once per test run.
pub fn media() -> &'static test_media::TestMedia {
    static MEDIA: OnceLock<test_media::TestMedia> = OnceLock::new();
    MEDIA.get_or_init(|| {
        test_media::make(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("media"), "720p30", MEDIA_SECONDS, false, 2)
            .expect("test media (ffmpeg)")
    })
}

/// `target/debug` (or wherever this test's binaries are).
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ivsctl")).parent().expect("bin dir").to_path_buf()
}

/// The WHIP publisher example, built by `cargo test` (examples are built with the tests).
pub fn publisher_bin() -> PathBuf {
    let path = bin_dir().join("examples").join("whip_publish");
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO")).args(["build", "--example", "whip_publish"]).status().expect("cargo");
        assert!(status.success(), "building the whip_publish example failed");
    }
    path
}

/// A static binary `ivsctl deploy` ships (`ivs-relay` or `bootstrap`), built by `cargo static`
/// for this profile (scripts/test.sh builds them; this builds them if missing).
pub fn static_binary(name: &str) -> PathBuf {
    let profile_dir = bin_dir();
    let profile = profile_dir.file_name().expect("profile").to_owned();
    let path = profile_dir.parent().expect("target dir").join("x86_64-unknown-linux-gnu").join(profile).join(name);
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO")).arg("static").status().expect("cargo");
        assert!(status.success(), "cargo static failed");
    }
    path
}

/// The static relay binary that `ivsctl deploy` packs into the image.
pub fn static_relay() -> PathBuf {
    static_binary("ivs-relay")
}

/// Which binary runs the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    /// `ivsctl local`: prints its URL on stdout.
    Local,
    /// `ivs-relay`, as deployed (plain HTTP here): logs its address.
    Deployed,
    /// `ivs-relay` over HTTPS with the certificate its flags give.
    DeployedTls,
}

/// The relay (`ivsctl local`, or `ivs-relay` as deployed) on loopback with a fresh HTTP and
/// UDP port.
pub struct Relay {
    pub child: Child,
    pub base: String,
    /// The one UDP port all WebRTC media goes to, on 127.0.0.1.
    pub udp_port: u16,
    pub stderr_log: PathBuf,
}

impl Relay {
    /// Starts `ivsctl local` in `cwd` with extra flags, and waits until it listens. The UDP port
    /// is free when picked but may be taken before the relay binds it (Chromium and other tests
    /// open UDP sockets all the time), so a relay that could not bind it gets another port.
    pub async fn start(cwd: &Path, extra: &[&str]) -> Relay {
        Self::start_program(Program::Local, cwd, extra).await
    }

    /// `ivs-relay` as the task runs it (internet exposure), on loopback over plain HTTP.
    pub async fn start_deployed(cwd: &Path, extra: &[&str]) -> Relay {
        Self::start_program(Program::Deployed, cwd, extra).await
    }

    /// `ivs-relay` over HTTPS (give `--tls-cert-pem`/`--tls-key-pem` or files, and `--listen`
    /// to choose the loopback address).
    pub async fn start_deployed_tls(cwd: &Path, extra: &[&str]) -> Relay {
        Self::start_program(Program::DeployedTls, cwd, extra).await
    }

    async fn start_program(program: Program, cwd: &Path, extra: &[&str]) -> Relay {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::try_start(program, cwd, extra).await {
                Ok(relay) => return relay,
                Err(log) if attempts < 3 && log.contains("Address already in use") => continue,
                Err(log) => panic!("the relay exited before listening:\n{log}"),
            }
        }
    }

    /// `Err` with the relay's log when it exits before listening.
    async fn try_start(program: Program, cwd: &Path, extra: &[&str]) -> Result<Relay, String> {
        // A test may fix the UDP port (to restart a relay where its publishers knew it).
        let given_udp = extra.iter().position(|a| *a == "--udp-port").and_then(|i| extra.get(i + 1)).and_then(|p| p.parse().ok());
        let udp_port = given_udp.unwrap_or_else(free_udp_port);
        let udp = udp_port.to_string();
        let stderr_log = cwd.join(format!("relay-{udp}.log"));
        // IVS_TEST_RELAY_BIN runs the relay tests against another `ivs-relay` build (say, one
        // from before a fix, to see a test reproduce its defect); `ivsctl local` is then that
        // relay over HTTP with local's default destination.
        let other = std::env::var_os("IVS_TEST_RELAY_BIN");
        let mut command = match (program, other) {
            (_, Some(bin)) => {
                let mut c = Command::new(bin);
                c.arg("--http");
                if program == Program::Local && !extra.contains(&"--destination") {
                    c.args(["--destination", "file://./recordings/{stream}-{time}.flv"]);
                }
                c
            }
            (Program::Local, None) => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_ivsctl"));
                c.arg("local");
                c
            }
            (Program::Deployed, None) => {
                let mut c = Command::new(bin_dir().join("ivs-relay"));
                c.arg("--http");
                c
            }
            (Program::DeployedTls, None) => Command::new(bin_dir().join("ivs-relay")),
        };
        if !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        if given_udp.is_none() {
            command.args(["--udp-port", &udp]);
        }
        let mut child = command
            .args(extra)
            .current_dir(cwd)
            .env("RUST_LOG", "info,ivs_relay=debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("ivsctl starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = match (program, std::env::var_os("IVS_TEST_RELAY_BIN")) {
            (Program::Local, None) => {
                let base = tokio::time::timeout(Duration::from_secs(20), async {
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(url) = line.trim().strip_prefix("web app:") {
                            return Some(url.trim().trim_end_matches('/').to_owned());
                        }
                    }
                    None
                })
                .await
                .expect("ivsctl local listens within 20 s");
                // Keep draining stdout so the relay never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                base
            }
            (Program::DeployedTls, None) => {
                logged_address(&mut child, &stderr_log).await.map(|base| base.replacen("http://", "https://", 1))
            }
            _ => logged_address(&mut child, &stderr_log).await,
        };
        let Some(base) = base else {
            let _ = child.wait().await;
            return Err(std::fs::read_to_string(&stderr_log).unwrap_or_default());
        };
        Ok(Relay { child, base, udp_port, stderr_log })
    }

    /// Open file descriptors of the relay process.
    pub fn open_fds(&self) -> usize {
        let pid = self.child.id().expect("running");
        std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
    }

    /// Threads of the relay process called `name` (as `top -H` shows them).
    pub fn threads_named(&self, name: &str) -> usize {
        let pid = self.child.id().expect("running");
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
        tasks.flatten().filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name)).count()
    }

    /// The relay's `/healthz` document.
    pub async fn health(&self) -> serde_json::Value {
        insecure_client().get(format!("{}/healthz", self.base)).send().await.expect("healthz").json().await.expect("healthz JSON")
    }

    pub fn whip(&self, stream: &str) -> String {
        format!("{}/whip/{stream}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base)).await.expect("metrics").text().await.expect("metrics body")
    }

    /// The value of one metric, summed over its labels (say, every destination's).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        let values: Vec<f64> = text
            .lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter_map(|rest| rest.strip_prefix(' ').or_else(|| rest.strip_prefix('{').and_then(|r| r.split_once("} ")).map(|(_, v)| v)))
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        assert!(!values.is_empty(), "metric {name} missing in:\n{text}");
        values.iter().sum()
    }

    /// The value of a metric for one label set, as `/metrics` writes it (`destination="…"`).
    pub async fn labelled_metric(&self, name: &str, labels: &str) -> Option<f64> {
        let prefix = format!("{name}{{{labels}}} ");
        self.metrics().await.lines().find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
    }

    /// Sends SIGTERM (what ECS sends to stop a task).
    pub fn signal_term(&self) {
        let pid = self.child.id().expect("running");
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        self.signal_term();
        tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.expect("relay exits within 20 s of SIGTERM").expect("wait")
    }
}

/// A client for the relays' self-signed HTTPS (and plain HTTP) in tests.
pub fn insecure_client() -> reqwest::Client {
    reqwest::Client::builder().danger_accept_invalid_certs(true).build().expect("client")
}

/// The `http=ADDR` of `ivs-relay`'s "relay listening" log line, as a base URL; `None` if the
/// relay exits first.
async fn logged_address(child: &mut Child, log: &Path) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("relay listening")) {
            let addr = line.split_whitespace().find_map(|w| w.strip_prefix("http="))?;
            return Some(format!("http://{addr}"));
        }
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("ivs-relay did not log its address within 20 s:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

/// A running WHIP publisher (the example), streaming the test media.
pub struct Publisher {
    pub child: Child,
    pub session_url: String,
}

impl Publisher {
    /// Starts publishing to `url`; `seconds` loops the media that long. Returns once the relay
    /// accepted the session (201), or with the publisher's error output.
    pub async fn start(url: &str, seconds: f64, extra: &[&str]) -> Result<Publisher, String> {
        let media = media();
        let mut child = Command::new(publisher_bin())
            .args(["--url", url, "--loopback", "--seconds", &seconds.to_string()])
            .arg("--video")
            .arg(&media.video)
            .arg("--audio")
            .arg(&media.audio)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("publisher starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.ok().and_then(|l| l.ok().flatten());
        match first.as_deref().and_then(|l| l.strip_prefix("session ")) {
            Some(url) => {
                let session_url = url.trim().to_owned();
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(Publisher { child, session_url })
            }
            None => {
                let output = child.wait_with_output().await.expect("publisher output");
                Err(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        }
    }

    /// Waits for the publisher to finish (it sends DELETE at the end).
    pub async fn finish(self) {
        let output =
            tokio::time::timeout(Duration::from_secs(120), self.child.wait_with_output()).await.expect("publisher ends").expect("wait");
        assert!(output.status.success(), "publisher failed: {}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    }

    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    pub async fn status(&self) -> Option<serde_json::Value> {
        session_status(&self.session_url).await
    }
}

/// GET on a session URL: its JSON, or `None` once it is gone (404).
pub async fn session_status(url: &str) -> Option<serde_json::Value> {
    let response = reqwest::get(url).await.ok()?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    response.json().await.ok()
}

/// Polls `check` every 100 ms until it is true or `limit` passes; returns the time it took.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
