//! The front door: one stable HTTPS URL (a Lambda Function URL) for the web app and for WHIP.
//! It serves the page itself, sends each new session to the least-loaded healthy relay, and
//! routes the session's later requests (GET, DELETE, PATCH, its destinations) to the relay
//! that holds it. Media never passes here: the relay's answer names its own public address.
//!
//! * `location` — the session URLs it hands out.
//! * `relays` — which relays may take a session now.
//! * `pinned` — HTTPS to relays holding the certificate `ivsctl deploy` made.

pub mod location;
pub mod pinned;
pub mod relays;

use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use self::relays::{Directory, Ranking, RelayAddress};
use crate::registry::Registry;

/// How long a relay has to answer `/healthz` before it is skipped.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
const DEADLINES: pinned::Deadlines = pinned::Deadlines { connect: Duration::from_secs(2), total: Duration::from_secs(20) };

/// Client headers a relay needs; nothing else is passed on.
const FORWARDED: [HeaderName; 5] =
    [header::CONTENT_TYPE, header::AUTHORIZATION, header::IF_MATCH, header::ACCEPT, HeaderName::from_static("x-rtmp-destination")];

/// Relay response headers that describe the relay's connection, not the answer.
const HOP_BY_HOP: [HeaderName; 6] =
    [header::CONNECTION, header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::DATE, header::SERVER, header::UPGRADE];

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0} is not set (ivsctl deploy sets it)")]
    Missing(&'static str),
    #[error("RELAY_PORT {0:?} is not a port")]
    Port(String),
    #[error(transparent)]
    Pin(#[from] pinned::PinError),
}

pub struct FrontDoor {
    directory: Directory,
    client: reqwest::Client,
    /// The web app's headers, the same as the relay sends with it.
    page_headers: HeaderMap,
}

/// What the front door needs, as `ivsctl deploy` sets it in the function's environment.
pub struct Settings {
    pub relay_cert_pem: String,
    pub relay_port: u16,
    pub playback_url: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, SetupError> {
        let relay_cert_pem = std::env::var("RELAY_CERT").map_err(|_| SetupError::Missing("RELAY_CERT"))?;
        let port = std::env::var("RELAY_PORT").unwrap_or_else(|_| "8443".to_owned());
        let relay_port = port.parse().map_err(|_| SetupError::Port(port))?;
        let playback_url = std::env::var("PLAYBACK_URL").ok().filter(|u| !u.is_empty());
        Ok(Self { relay_cert_pem, relay_port, playback_url })
    }
}

impl FrontDoor {
    pub fn new(registry: Registry, settings: &Settings) -> Result<Self, SetupError> {
        let client = pinned::client(&settings.relay_cert_pem, DEADLINES)?;
        let mut page_headers = HeaderMap::new();
        for (name, value) in ivs_web::page_headers(settings.playback_url.as_deref()) {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                page_headers.insert(name, value);
            }
        }
        Ok(Self { directory: Directory::new(registry, client.clone(), settings.relay_port), client, page_headers })
    }

    pub async fn handle(&self, request: LambdaFunctionUrlRequest) -> LambdaFunctionUrlResponse {
        let method = request.request_context.http.method.as_deref().and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        let path = request.raw_path.clone().unwrap_or_else(|| "/".to_owned());
        let Some(method) = method else { return text(StatusCode::BAD_REQUEST, "no HTTP method in the request") };
        let response = self.route(&method, &path, request).await.unwrap_or_else(|refusal| text(refusal.0, &refusal.1));
        tracing::info!(%method, %path, status = response.status_code, "request");
        response
    }

    async fn route(&self, method: &Method, path: &str, request: LambdaFunctionUrlRequest) -> Result<LambdaFunctionUrlResponse, Refusal> {
        if let Some(rest) = path.strip_prefix("/whip/") {
            let body = body(&request)?;
            return match rest.split('/').collect::<Vec<_>>()[..] {
                [stream] if method == Method::POST => self.create(stream, &request.headers, body).await,
                [_] => self.to_any_relay(method, path, &request.headers, body).await,
                // The session and what is under it (its destinations).
                [stream, resource, ref under @ ..] if under.len() <= 2 => {
                    let Some((tag, session)) = location::split(resource) else {
                        return Err(refuse(StatusCode::NOT_FOUND, "no such session"));
                    };
                    let relay = self.directory.find(tag).await.map_err(registry_unavailable)?;
                    let Some(relay) = relay else {
                        return Err(refuse(StatusCode::NOT_FOUND, "no such session (its relay is gone)"));
                    };
                    let path: String = [stream, session].iter().chain(under).map(|part| format!("/{part}")).collect();
                    let forwarded = self.forward(&relay, method, &format!("/whip{path}"), &request.headers, body).await;
                    forwarded.map(|answer| answer.into_response(None)).map_err(|e| relay_failed(&relay, &e))
                }
                _ => Err(refuse(StatusCode::NOT_FOUND, "not found")),
            };
        }
        if path == "/api/config" && method == Method::GET {
            return self.to_any_relay(method, path, &request.headers, Vec::new()).await;
        }
        match ivs_web::file(path) {
            Some(file) if method == Method::GET || method == Method::HEAD => Ok(self.page(file)),
            Some(_) => Err(refuse(StatusCode::METHOD_NOT_ALLOWED, "only GET")),
            None => Err(refuse(StatusCode::NOT_FOUND, "not found")),
        }
    }

    fn page(&self, file: &ivs_web::File) -> LambdaFunctionUrlResponse {
        let mut headers = self.page_headers.clone();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(ivs_web::CACHE_CONTROL));
        response(StatusCode::OK, headers, file.body)
    }

    /// A new session: the ready relays in turn, least loaded first, until one answers with
    /// anything but "full" (503).
    async fn create(&self, stream: &str, headers: &HeaderMap, body: Vec<u8>) -> Result<LambdaFunctionUrlResponse, Refusal> {
        let ranking = self.directory.ranked().await.map_err(registry_unavailable)?;
        // One publisher per stream across the relays, as on one: a stream live on any relay
        // (draining ones too) gets that relay's own answer (409, with its reason).
        if let Some(holder) = self.holder(stream, &ranking, headers).await {
            let answer = self.forward(holder, &Method::POST, &format!("/whip/{stream}"), headers, body).await;
            return answer.map(|a| a.into_response(Some(&holder.tag))).map_err(|e| relay_failed(holder, &e));
        }
        let mut refused = 0;
        for relay in &ranking.ready {
            match self.forward(relay, &Method::POST, &format!("/whip/{stream}"), headers, body.clone()).await {
                Ok(answer) if answer.status == StatusCode::SERVICE_UNAVAILABLE => refused += 1,
                Ok(answer) => {
                    tracing::info!(relay = %relay.tag, status = answer.status.as_u16(), "session offer answered");
                    return Ok(answer.into_response(Some(&relay.tag)));
                }
                Err(e) => tracing::warn!(relay = %relay.tag, error = %error_chain(&e), "relay skipped: the offer did not get through"),
            }
        }
        Err(refuse(StatusCode::BAD_GATEWAY, ranking.shortfall(refused)))
    }

    /// The relay that has a session of `stream`, if one does (`HEAD /whip/{stream}`, asked of
    /// every answering relay at once, with the client's own credentials).
    async fn holder<'a>(&self, stream: &str, ranking: &'a Ranking, headers: &HeaderMap) -> Option<&'a RelayAddress> {
        let relays: Vec<&RelayAddress> = ranking.ready.iter().chain(&ranking.draining).collect();
        let asked = futures_util::future::join_all(relays.iter().map(|relay| async move {
            let mut request = self.client.head(format!("{}/whip/{stream}", relay.base)).timeout(PROBE_TIMEOUT);
            if let Some(authorization) = headers.get(header::AUTHORIZATION) {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            request.send().await.is_ok_and(|r| r.status() == StatusCode::OK)
        }))
        .await;
        relays.into_iter().zip(asked).find_map(|(relay, holds)| holds.then_some(relay))
    }

    /// Requests any relay answers the same (OPTIONS, the page's configuration): the first
    /// registered relay that answers, with no health round first.
    async fn to_any_relay(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<LambdaFunctionUrlResponse, Refusal> {
        let relays = self.directory.relays().await.map_err(registry_unavailable)?;
        for relay in &relays {
            if let Ok(answer) = self.forward(relay, method, path, headers, body.clone()).await {
                return Ok(answer.into_response(None));
            }
        }
        Err(refuse(StatusCode::BAD_GATEWAY, format!("none of the {} running relays answered; try again shortly", relays.len())))
    }

    async fn forward(
        &self,
        relay: &RelayAddress,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self.client.request(method.clone(), format!("{}{path}", relay.base));
        for name in &FORWARDED {
            for value in headers.get_all(name) {
                request = request.header(name, value);
            }
        }
        if !body.is_empty() {
            request = request.body(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let mut headers = response.headers().clone();
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
        let body = response.bytes().await?.to_vec();
        Ok(Answer { status, headers, body })
    }
}

/// A relay's answer, on its way back to the client.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// With a new session's `Location` pointing back at the front door (`tag` names the relay).
    fn into_response(mut self, tag: Option<&str>) -> LambdaFunctionUrlResponse {
        if let Some(tag) = tag {
            let location = self.headers.get(header::LOCATION).and_then(|l| l.to_str().ok()).and_then(|l| location::rewrite(l, tag));
            match location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                Some(location) => {
                    self.headers.insert(header::LOCATION, location);
                }
                None => {
                    self.headers.remove(header::LOCATION);
                }
            }
        }
        response(self.status, self.headers, &self.body)
    }
}

/// The Function URL response: repeated headers (say `Link`) joined, as HTTP allows, because
/// the payload carries one value per name.
fn response(status: StatusCode, headers: HeaderMap, body: &[u8]) -> LambdaFunctionUrlResponse {
    let mut joined = HeaderMap::new();
    for name in headers.keys() {
        let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        if let Ok(value) = HeaderValue::from_str(&values.join(", ")) {
            joined.insert(name.clone(), value);
        }
    }
    let (body, is_base64_encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = i64::from(status.as_u16());
    response.headers = joined;
    response.body = Some(body);
    response.is_base64_encoded = is_base64_encoded;
    response
}

/// A request the front door answers itself, with a status and one line for the person.
pub struct Refusal(StatusCode, String);

fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal(status, reason.into())
}

/// A one-line answer of the front door's own, shaped like the relay's refusals.
fn text(status: StatusCode, reason: &str) -> LambdaFunctionUrlResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if status == StatusCode::BAD_GATEWAY || status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    }
    response(status, headers, format!("{reason}\n").as_bytes())
}

fn body(request: &LambdaFunctionUrlRequest) -> Result<Vec<u8>, Refusal> {
    let Some(body) = &request.body else { return Ok(Vec::new()) };
    if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| refuse(StatusCode::BAD_REQUEST, "the request body is marked base64 but is not"))
    } else {
        Ok(body.clone().into_bytes())
    }
}

fn registry_unavailable(e: crate::registry::RegistryError) -> Refusal {
    tracing::error!(error = %e, "relay registry unreadable");
    refuse(StatusCode::SERVICE_UNAVAILABLE, "the relay registry cannot be read right now; try again shortly")
}

fn relay_failed(relay: &RelayAddress, e: &reqwest::Error) -> Refusal {
    tracing::warn!(relay = %relay.tag, error = %error_chain(e), "relay did not answer");
    refuse(StatusCode::BAD_GATEWAY, "the session's relay did not answer; try again shortly")
}

/// An error with its causes, on one line (reqwest's own message hides the TLS reason).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
