//! Real RTMP ingests on loopback: `ffmpeg -listen 1` recording what it receives, and nginx's
//! stream module terminating TLS in front of it for rtmps://.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Whether something listens on 127.0.0.1:`port` (read from /proc, so the single-accept
/// ffmpeg listener is not used up by a probe connection).
pub fn listening(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().filter_map(|f| std::fs::read_to_string(f).ok()).any(|table| {
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && format!("{} ", fields[1]).ends_with(&needle) && fields[3] == "0A"
        })
    })
}

pub async fn wait_listening(port: u16) {
    for _ in 0..100 {
        if listening(port) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on port {port} after 5 s");
}

/// `ffmpeg -listen 1 -i rtmp://127.0.0.1:PORT/live/KEY -c copy out.flv`: one publish, recorded.
pub struct FfmpegIngest {
    pub child: Child,
    pub port: u16,
    pub out: PathBuf,
}

pub const STREAM_KEY: &str = "sk_test_s3cr3t_key";

impl FfmpegIngest {
    pub async fn start(port: u16, out: &Path) -> FfmpegIngest {
        let url = format!("rtmp://127.0.0.1:{port}/live/{STREAM_KEY}");
        let child = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-listen", "1", "-i", &url, "-c", "copy", "-f", "flv"])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("ffmpeg starts");
        wait_listening(port).await;
        FfmpegIngest { child, port, out: out.to_path_buf() }
    }

    pub fn url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live/{STREAM_KEY}", self.port)
    }

    /// Waits for ffmpeg to finish its recording (it exits when the publisher ends the stream).
    pub async fn finished(mut self) -> PathBuf {
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.expect("ingest ffmpeg exits when the stream ends");
        self.out
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// nginx in the foreground with `conf`, its paths relative to `dir`; killed when dropped.
pub fn nginx(conf: &Path, dir: &Path) -> Child {
    Command::new("nginx")
        .arg("-c")
        .arg(conf)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nginx starts")
}

/// nginx terminating TLS on `port` as `host` (its certificate's name) and passing the bytes to
/// 127.0.0.1:`backend`.
/// One process (`master_process off`): killing it on drop leaves no worker behind.
pub struct TlsProxy {
    pub child: Child,
    pub port: u16,
    /// The CA (here: the self-signed certificate itself) a client must trust.
    pub ca: PathBuf,
}

impl TlsProxy {
    pub async fn start(dir: &Path, host: &str, port: u16, backend: u16) -> TlsProxy {
        let cert = rcgen::generate_simple_self_signed(vec![host.to_owned()]).expect("certificate");
        let (cert_path, key_path) = (dir.join("ingest-cert.pem"), dir.join("ingest-key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
        let conf = dir.join("nginx-tls.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
                 daemon off; master_process off; pid {dir}/nginx.pid; error_log {dir}/nginx-error.log;\n\
                 events {{}}\n\
                 stream {{ server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {cert}; ssl_certificate_key {key}; proxy_pass 127.0.0.1:{backend}; }} }}\n",
                dir = dir.display(),
                cert = cert_path.display(),
                key = key_path.display(),
            ),
        )
        .expect("write nginx.conf");
        let child = nginx(&conf, dir);
        wait_listening(port).await;
        TlsProxy { child, port, ca: cert_path }
    }
}

/// nginx's RTMP module, as a streaming server takes a publish: application `live` records each
/// publish to its own file in `dir` (`record_unique`). Any other application is refused.
pub struct NginxRtmp {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl NginxRtmp {
    pub async fn start(dir: &Path, port: u16) -> NginxRtmp {
        let recordings = dir.join(format!("nginx-rtmp-{port}"));
        std::fs::create_dir_all(&recordings).expect("recordings dir");
        let conf = dir.join(format!("nginx-rtmp-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
                 daemon off; master_process off; pid {dir}/nginx-rtmp-{port}.pid; error_log {dir}/nginx-rtmp-{port}-error.log info;\n\
                 events {{}}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record all; record_path {rec}; record_unique on; }} }} }}\n",
                dir = dir.display(),
                rec = recordings.display(),
            ),
        )
        .expect("write nginx-rtmp.conf");
        let child = nginx(&conf, dir);
        wait_listening(port).await;
        NginxRtmp { child, port, dir: recordings }
    }

    pub fn url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live/{STREAM_KEY}", self.port)
    }

    /// What nginx recorded, oldest first.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort_by_key(|f| std::fs::metadata(f).and_then(|m| m.created()).ok());
        files
    }
}
