//! A real OCI registry on loopback: Debian's `docker-registry` (the CNCF distribution server),
//! storing in a temporary directory, with its access log kept to count uploads.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

pub struct DockerRegistry {
    pub child: Child,
    pub url: String,
    log: PathBuf,
}

impl DockerRegistry {
    pub async fn start(dir: &Path) -> DockerRegistry {
        Self::start_with(dir, false).await
    }

    /// A registry in maintenance mode: reads work, every write is refused (405).
    pub async fn start_read_only(dir: &Path) -> DockerRegistry {
        Self::start_with(dir, true).await
    }

    async fn start_with(dir: &Path, read_only: bool) -> DockerRegistry {
        let port = super::free_tcp_port();
        let storage = dir.join("registry");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: info, accesslog: {{ disabled: false }} }}\n\
                 storage: {{ filesystem: {{ rootdirectory: {} }}, maintenance: {{ readonly: {{ enabled: {read_only} }} }} }}\n\
                 http: {{ addr: 127.0.0.1:{port} }}\n",
                storage.display()
            ),
        )
        .expect("registry config");
        let log = dir.join("registry.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry starts (apt install docker-registry)");
        let url = format!("http://127.0.0.1:{port}");
        let ready = super::wait_until(Duration::from_secs(10), || async { reqwest::get(format!("{url}/v2/")).await.is_ok() }).await;
        assert!(ready.is_some(), "docker-registry did not answer within 10 s");
        DockerRegistry { child, url, log }
    }

    /// Upload sessions the registry has opened (`POST …/blobs/uploads/`), from its access log.
    pub fn uploads(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"POST /v2/") && l.contains("/blobs/uploads/"))
            .count()
    }

    /// GET `/v2/<repository>/<path>`, checked to be a 200; the body.
    pub async fn get(&self, repository: &str, path: &str, accept: &str) -> Vec<u8> {
        let response = reqwest::Client::new()
            .get(format!("{}/v2/{repository}/{path}", self.url))
            .header("accept", accept)
            .send()
            .await
            .expect("registry answers");
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.bytes().await.expect("body").to_vec()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}
