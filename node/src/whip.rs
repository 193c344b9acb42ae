//! The HTTP surface: WHIP (RFC 9725) on `/whip/{stream}`, session status, health, metrics, the
//! web app's config. Status codes follow the RFC and what real clients (browsers, OBS) expect:
//! 201 + Location + ETag on POST, 200 on DELETE, 405 for trickle PATCH (not supported: the
//! answer carries every candidate), 415/400/406/401/403/409/503 with a one-line reason.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use subtle::ConstantTimeEq;

use crate::destination::{AddressPolicy, Destination, DestinationError};
use crate::offer::MAX_OFFER_BYTES;
use crate::relay::{Relay, StartError};
use crate::session::SessionError;

/// Header a client names its own destination with (when the relay allows it).
pub const DESTINATION_HEADER: &str = "x-rtmp-destination";

pub fn router(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/whip/{stream}", post(create_session).options(whip_options))
        .route("/whip/{stream}/{session}", get(session_status).delete(delete_session).patch(trickle).options(whip_options))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/config", get(web_config))
        .merge(crate::web::router())
        .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES))
        .layer(axum::middleware::map_response(allow_any_origin))
        .with_state(relay)
}

/// CORS for every response: any origin may publish (the bearer token is the gate) and read the
/// WHIP headers. Preflights are answered by `whip_options`, which RFC 9725 also gives the
/// endpoint's own OPTIONS semantics; a generic CORS layer would swallow those.
async fn allow_any_origin(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("location, etag, link"));
    response
}

/// A refusal: status and the one line the client sees.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let Refusal(status, reason) = self;
        let mut response = (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{reason}\n")).into_response();
        match status {
            StatusCode::UNAUTHORIZED => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            _ => {}
        }
        response
    }
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal(status, reason.into())
}

/// Checks `Authorization: Bearer <token>` in constant time, when the relay has a token.
fn authorize(relay: &Relay, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = &relay.config.token else { return Ok(()) };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) => Ok(()),
        Some(_) => Err(refuse(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Err(refuse(StatusCode::UNAUTHORIZED, "missing bearer token (Authorization: Bearer …)")),
    }
}

fn valid_stream_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `Link` headers for the ICE servers clients should use (RFC 9725 §4.4).
fn ice_server_links(relay: &Relay) -> Vec<HeaderValue> {
    relay.config.ice_servers.iter().filter_map(|url| HeaderValue::from_str(&format!("<{url}>; rel=\"ice-server\"")).ok()).collect()
}

async fn create_session(
    State(relay): State<Arc<Relay>>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    authorize(&relay, &headers)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp")) {
        return Err(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the offer must be sent as Content-Type: application/sdp"));
    }
    if !valid_stream_name(&stream) {
        return Err(refuse(StatusCode::BAD_REQUEST, "stream name must be 1-64 letters, digits, '-' or '_'"));
    }
    let offer = String::from_utf8(body.to_vec()).map_err(|_| refuse(StatusCode::BAD_REQUEST, "malformed SDP offer: not UTF-8"))?;
    let (destination, policy) = choose_destination(&relay, &stream, &headers).await?;

    let (session, answer) = relay.start_session(&stream, offer, destination, policy).await.map_err(|e| match e {
        StartError::Full => refuse(StatusCode::SERVICE_UNAVAILABLE, "the relay is at its session limit; try again shortly"),
        StartError::Busy => refuse(StatusCode::CONFLICT, format!("stream {stream:?} already has a live session")),
        StartError::ShuttingDown => refuse(StatusCode::SERVICE_UNAVAILABLE, "the relay is shutting down"),
        StartError::Session(SessionError::Offer(e)) if e.is_unsupported() => refuse(StatusCode::NOT_ACCEPTABLE, e.to_string()),
        StartError::Session(SessionError::Offer(e)) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
        StartError::Session(e) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
    })?;

    let location = format!("/whip/{stream}/{}", session.id);
    let mut response = (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/sdp")], answer).into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "bad location"))?);
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{}\"", session.id)).map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "bad etag"))?,
    );
    for link in ice_server_links(&relay) {
        h.append(header::LINK, link);
    }
    Ok(response)
}

/// The relay's own destination, or the client's when allowed and safe.
async fn choose_destination(relay: &Relay, stream: &str, headers: &HeaderMap) -> Result<(Destination, AddressPolicy), Refusal> {
    let now = jiff::Timestamp::now();
    let chosen = headers.get(DESTINATION_HEADER).map(|v| v.to_str().unwrap_or("")).map(str::trim).filter(|v| !v.is_empty());
    let Some(url) = chosen else {
        let template = relay.config.destination.as_deref().ok_or_else(|| {
            refuse(StatusCode::BAD_REQUEST, "this relay has no default destination: name one with the X-RTMP-Destination header")
        })?;
        let destination =
            Destination::parse(template, stream, now).map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        return Ok((destination, AddressPolicy::Any));
    };
    if !relay.config.allow_client_destination {
        return Err(refuse(StatusCode::FORBIDDEN, "this relay does not accept client-chosen destinations"));
    }
    let destination = Destination::parse(url, stream, now).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
    let Destination::Rtmp(target) = &destination else {
        return Err(refuse(StatusCode::FORBIDDEN, DestinationError::ClientFile.to_string()));
    };
    let policy = if relay.config.allow_private_destinations { AddressPolicy::Any } else { AddressPolicy::PublicOnly };
    match crate::destination::resolve(&relay.config.dns, target, policy).await {
        Ok(_) => Ok((destination, policy)),
        Err(e @ DestinationError::PrivateAddress { .. }) => Err(refuse(StatusCode::FORBIDDEN, e.to_string())),
        Err(e) => Err(refuse(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

async fn whip_options(State(relay): State<Arc<Relay>>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(HeaderName::from_static("accept-post"), HeaderValue::from_static("application/sdp"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE, PATCH, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type, if-match, x-rtmp-destination"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    for link in ice_server_links(&relay) {
        h.append(header::LINK, link);
    }
    response
}

async fn delete_session(
    State(relay): State<Arc<Relay>>,
    Path((stream, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, Refusal> {
    authorize(&relay, &headers)?;
    let session = relay.session(&stream, &id).ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such session"))?;
    session.stop("ended by the publisher (DELETE)");
    session.finished().await;
    Ok(StatusCode::OK)
}

async fn session_status(
    State(relay): State<Arc<Relay>>,
    Path((stream, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    authorize(&relay, &headers)?;
    let report = relay.report(&stream, &id).ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such session"))?;
    Ok(Json(report).into_response())
}

async fn trickle(State(relay): State<Arc<Relay>>, headers: HeaderMap) -> Result<Response, Refusal> {
    authorize(&relay, &headers)?;
    let mut response =
        refuse(StatusCode::METHOD_NOT_ALLOWED, "trickle ICE is not supported: the answer holds every candidate").into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, DELETE, OPTIONS"));
    Ok(response)
}

async fn healthz(State(relay): State<Arc<Relay>>) -> Response {
    if relay.accepting() {
        (StatusCode::OK, Json(serde_json::json!({ "status": "ok", "sessions": relay.session_count() }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "draining", "sessions": relay.session_count() })))
            .into_response()
    }
}

async fn metrics(State(relay): State<Arc<Relay>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], relay.metrics.encode()).into_response()
}

/// What the web app needs to know about this relay (nothing secret).
async fn web_config(State(relay): State<Arc<Relay>>) -> Json<serde_json::Value> {
    let c = &relay.config;
    let default_destination = c.destination.as_deref().and_then(|t| Destination::parse_url(t).ok()).map(|d| d.display_host());
    Json(serde_json::json!({
        "token_required": c.token.is_some(),
        "client_destination_allowed": c.allow_client_destination,
        "default_destination": default_destination,
        "playback_url": c.playback_url,
        "ice_servers": c.ice_servers,
    }))
}
