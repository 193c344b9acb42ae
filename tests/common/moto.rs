//! A real moto server (the AWS emulator) on loopback, one per test, and SDK config for it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub struct Moto {
    pub child: Child,
    pub endpoint: String,
}

pub const REGION: &str = "us-east-1";

impl Moto {
    pub async fn start() -> Moto {
        let python = std::env::var("MOTO_PYTHON")
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python").to_string_lossy().into_owned());
        assert!(Path::new(&python).exists(), "no Python with moto at {python}: run scripts/test.sh (it makes the venv)");
        let port = super::free_tcp_port();
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("moto starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let ready =
            super::wait_until(Duration::from_secs(30), || async { reqwest::get(format!("{endpoint}/moto-api/")).await.is_ok() }).await;
        assert!(ready.is_some(), "moto did not answer within 30 s");
        Moto { child, endpoint }
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }

    /// Environment for a child process that should talk to this moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}
