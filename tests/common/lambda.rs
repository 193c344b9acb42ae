//! Lambda as the tests run it: a Runtime API served here, the real built `bootstrap` processes
//! polling it, and a Function URL emulator (loopback HTTP → payload v2 events → the function →
//! HTTP responses) in front.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot};

/// How an invocation ended: the function's result, or the error it reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Response(Value),
    Error(Value),
}

/// A Lambda Runtime API: invocations go in, the bootstrap processes take them one at a time each.
pub struct RuntimeApi {
    pub port: u16,
    queue: mpsc::UnboundedSender<(String, Value)>,
    pending: Arc<std::sync::Mutex<HashMap<String, oneshot::Sender<Invocation>>>>,
    next_id: AtomicU64,
}

struct ApiState {
    queue: Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    pending: Arc<std::sync::Mutex<HashMap<String, oneshot::Sender<Invocation>>>>,
}

impl RuntimeApi {
    pub async fn start() -> Arc<RuntimeApi> {
        let (queue, receiver) = mpsc::unbounded_channel();
        let pending = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let state = Arc::new(ApiState { queue: Mutex::new(receiver), pending: pending.clone() });
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Arc::new(RuntimeApi { port, queue, pending, next_id: AtomicU64::new(0) })
    }

    /// Runs one invocation to its end.
    pub async fn invoke(&self, event: Value) -> Invocation {
        let id = format!("req-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending").insert(id.clone(), tx);
        self.queue.send((id, event)).expect("runtime API running");
        tokio::time::timeout(std::time::Duration::from_secs(60), rx)
            .await
            .expect("the function answers within 60 s")
            .expect("answer delivered")
    }

    /// Starts a `bootstrap` process polling this API, with the function's environment; its log
    /// goes to a file in the temporary directory (`bootstrap-<port>-<n>.log`).
    pub fn spawn_bootstrap(&self, env: &[(String, String)]) -> Child {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let log = std::env::temp_dir().join(format!("bootstrap-{}-{n}.log", self.port));
        Command::new(bootstrap_bin())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", self.port))
            .env("AWS_LAMBDA_FUNCTION_NAME", "ivs-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ivs-test")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).expect("bootstrap log"))
            .kill_on_drop(true)
            .spawn()
            .expect("bootstrap starts")
    }
}

/// The static bootstrap `ivsctl deploy` zips (`cargo static`): the binary Lambda runs.
pub fn bootstrap_bin() -> PathBuf {
    super::static_binary("bootstrap")
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    let Some((id, event)) = state.queue.lock().await.recv().await else { return StatusCode::GONE.into_response() };
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).expect("id"));
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_static("9999999999999"));
    headers
        .insert("lambda-runtime-invoked-function-arn", HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:ivs-test"));
    (headers, event.to_string()).into_response()
}

async fn answer(State(state): State<Arc<ApiState>>, Path((id, kind)): Path<(String, String)>, body: String) -> &'static str {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let outcome = if kind == "response" { Invocation::Response(value) } else { Invocation::Error(value) };
    if let Some(tx) = state.pending.lock().expect("pending").remove(&id) {
        let _ = tx.send(outcome);
    }
    "{}"
}

/// A Function URL (AuthType NONE) on loopback in front of a function.
pub struct FunctionUrl {
    pub base: String,
    pub api: Arc<RuntimeApi>,
    _instances: Vec<Child>,
}

impl FunctionUrl {
    /// `instances` bootstrap processes serve requests side by side, as Lambda scales out.
    pub async fn start(env: &[(String, String)], instances: usize) -> FunctionUrl {
        let api = RuntimeApi::start().await;
        let children = (0..instances).map(|_| api.spawn_bootstrap(env)).collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(front).with_state(api.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FunctionUrl { base, api, _instances: children }
    }
}

/// One HTTP request as Lambda's Function URL payload v2: header names lowercased, repeated
/// headers joined by commas, the body base64.
async fn front(State(api): State<Arc<RuntimeApi>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_owned();
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.uri.path(),
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "test", "domainName": host, "domainPrefix": "test",
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "01/Dec/2026:12:00:00 +0000", "timeEpoch": 0,
            "http": { "method": parts.method.as_str(), "path": parts.uri.path(), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                      "userAgent": headers.get("user-agent").cloned().unwrap_or(Value::Null) }
        },
        "body": base64::engine::general_purpose::STANDARD.encode(&body),
        "isBase64Encoded": true,
    });
    match api.invoke(event).await {
        Invocation::Response(answer) => into_http(&answer),
        // Lambda's own answer when a function fails.
        Invocation::Error(error) => (StatusCode::BAD_GATEWAY, format!("function error: {error}")).into_response(),
    }
}

fn into_http(answer: &Value) -> Response {
    let status = answer["statusCode"].as_u64().and_then(|s| StatusCode::from_u16(s as u16).ok()).unwrap_or(StatusCode::OK);
    let body = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"] == true {
        base64::engine::general_purpose::STANDARD.decode(body).expect("function's base64 body")
    } else {
        body.as_bytes().to_vec()
    };
    let mut response = (status, body).into_response();
    if let Some(headers) = answer["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str)) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}
