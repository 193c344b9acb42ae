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
        Self::start_with(&[]).await
    }

    /// Starts moto with extra settings, e.g. `MOTO_ECS_SERVICE_RUNNING` (how many tasks a new
    /// service reports running).
    pub async fn start_with(settings: &[(&str, &str)]) -> Moto {
        let python = std::env::var("MOTO_PYTHON")
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python").to_string_lossy().into_owned());
        assert!(Path::new(&python).exists(), "no Python with moto at {python}: run scripts/test.sh (it makes the venv)");
        let port = super::free_tcp_port();
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .envs(settings.iter().copied())
            .env("MOTO_RECORDER_FILEPATH", std::env::temp_dir().join(format!("moto-recording-{port}.jsonl")))
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

    /// Starts recording every request moto receives (from now on).
    pub async fn start_recording(&self) {
        let client = reqwest::Client::new();
        for step in ["reset-recording", "start-recording"] {
            let response = client.post(format!("{}/moto-api/recorder/{step}", self.endpoint)).send().await.expect("moto recorder answers");
            assert!(response.status().is_success(), "moto {step}: {}", response.status());
        }
    }

    /// Stops recording and returns the API actions received since `start_recording`.
    pub async fn stop_recording(&self) -> Vec<Call> {
        let client = reqwest::Client::new();
        client.post(format!("{}/moto-api/recorder/stop-recording", self.endpoint)).send().await.expect("moto recorder stops");
        let text = client
            .get(format!("{}/moto-api/recorder/download-recording", self.endpoint))
            .send()
            .await
            .expect("moto recording downloads")
            .text()
            .await
            .expect("recording text");
        text.lines().filter(|l| !l.trim().is_empty()).map(Call::from_recorded).collect()
    }
}

/// One recorded AWS API call.
#[derive(Debug, Clone)]
pub struct Call {
    /// e.g. `CreateRole`, `DescribeServices`, or for REST APIs `POST /2015-03-31/functions`.
    pub action: String,
    /// The service the request was signed for, e.g. `iam`.
    pub service: String,
}

impl Call {
    fn from_recorded(line: &str) -> Call {
        use base64::Engine;
        let entry: serde_json::Value = serde_json::from_str(line).expect("recorder writes JSON lines");
        let headers = entry["headers"].as_object().cloned().unwrap_or_default();
        let header =
            |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str()).map(str::to_owned);
        // `Credential=KEY/DATE/REGION/SERVICE/aws4_request`
        let service = header("Authorization")
            .and_then(|a| a.split("Credential=").nth(1).and_then(|c| c.split('/').nth(3)).map(str::to_owned))
            .unwrap_or_default();
        if let Some(target) = header("X-Amz-Target") {
            return Call { action: target.rsplit('.').next().unwrap_or_default().to_owned(), service };
        }
        let body = entry["body"].as_str().unwrap_or_default();
        let body = if entry["body_encoded"].as_bool() == Some(true) {
            String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default()).into_owned()
        } else {
            body.to_owned()
        };
        let url = entry["url"].as_str().unwrap_or_default();
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        for pair in body.split('&').chain(query.split('&')) {
            if let Some(action) = pair.strip_prefix("Action=") {
                return Call { action: action.to_owned(), service };
            }
        }
        let path = url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..])).unwrap_or(url);
        Call { action: format!("{} {}", entry["method"].as_str().unwrap_or_default(), path.split('?').next().unwrap_or_default()), service }
    }

    /// The IAM action the call needs, e.g. `lambda:AddPermission` (REST calls mapped from their
    /// method and path).
    pub fn iam_action(&self) -> String {
        let Some((method, path)) = self.action.split_once(' ') else { return format!("{}:{}", self.service, self.action) };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let action = match (self.service.as_str(), method, parts.as_slice()) {
            ("lambda", "POST", [_, "functions"]) => "CreateFunction",
            ("lambda", "GET", [_, "functions", _]) => "GetFunction",
            ("lambda", "DELETE", [_, "functions", _]) => "DeleteFunction",
            ("lambda", "PUT", [_, "functions", _, "code"]) => "UpdateFunctionCode",
            ("lambda", "PUT", [_, "functions", _, "configuration"]) => "UpdateFunctionConfiguration",
            ("lambda", "GET", [_, "functions", _, "configuration"]) => "GetFunctionConfiguration",
            ("lambda", "GET", [_, "functions", _, "policy"]) => "GetPolicy",
            ("lambda", "POST", [_, "functions", _, "policy"]) => "AddPermission",
            ("lambda", "DELETE", [_, "functions", _, "policy", _]) => "RemovePermission",
            ("lambda", "GET", [_, "functions", _, "url"]) => "GetFunctionUrlConfig",
            ("lambda", "POST", [_, "functions", _, "url"]) => "CreateFunctionUrlConfig",
            ("lambda", "PUT", [_, "functions", _, "url"]) => "UpdateFunctionUrlConfig",
            ("lambda", "DELETE", [_, "functions", _, "url"]) => "DeleteFunctionUrlConfig",
            ("lambda", "GET", [_, "tags", ..]) => "ListTags",
            ("lambda", "POST", [_, "tags", ..]) => "TagResource",
            // IVS's REST paths are its action names.
            ("ivs", _, [action]) => action,
            _ => return format!("{}:{method} {path}", self.service),
        };
        format!("{}:{action}", self.service)
    }

    /// Whether the call can change anything (every AWS read is a Describe/Get/List/Scan/Query or an HTTP GET).
    pub fn writes(&self) -> bool {
        const READS: [&str; 7] = ["Describe", "Get", "List", "BatchGet", "Scan", "Query", "GET "];
        !READS.iter().any(|prefix| self.action.starts_with(prefix))
    }
}

/// The relay registry table as `ivsctl deploy` makes it (key `task_arn`, on demand).
pub async fn create_registry_table(config: &aws_config::SdkConfig, name: &str) {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .key_schema(KeySchemaElement::builder().attribute_name("task_arn").key_type(KeyType::Hash).build().expect("key"))
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("task_arn").attribute_type(ScalarAttributeType::S).build().expect("attr"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("table");
}
