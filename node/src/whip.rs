//! The HTTP surface: WHIP (RFC 9725) on `/whip/{stream}`, session status, a live session's
//! destinations (`/whip/{stream}/{session}/destinations`), health, metrics, the web app's config. Status codes follow the RFC and what real clients (browsers, OBS) expect:
//! 201 + Location + ETag on POST, 200 on DELETE, 405 for trickle PATCH (not supported: the
//! answer carries every candidate), 415/400/406/401/403/409/429/503 with a one-line reason.
//! Every WHIP route is behind `guard` (origin, token, rate, body deadline).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use crate::destination::{Destination, DestinationError};
use crate::guard::{Refusal, refuse};
use crate::offer::MAX_OFFER_BYTES;
use crate::relay::{Relay, StartError};
use crate::session::{ControlError, Session, SessionError};
use crate::sink::FanoutError;
use crate::status::Origin;

/// Header a client names its own destinations with (when the relay allows it): one line per
/// destination, or several comma-separated on one line.
pub const DESTINATION_HEADER: &str = "x-rtmp-destination";

pub fn router(relay: Arc<Relay>) -> Router {
    let whip = Router::new()
        .route("/whip/{stream}", post(create_session).head(stream_in_use).options(whip_options))
        .route("/whip/{stream}/{session}", get(session_status).delete(delete_session).patch(trickle).options(whip_options))
        .route("/whip/{stream}/{session}/destinations", post(add_destination).options(whip_options))
        .route("/whip/{stream}/{session}/destinations/{destination}", delete(remove_destination).options(whip_options))
        .route_layer(axum::middleware::from_fn_with_state(relay.clone(), crate::guard::whip_guard));
    Router::new()
        .merge(whip)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/config", get(web_config))
        .merge(crate::web::router())
        .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES))
        .layer(axum::middleware::map_response_with_state(relay.clone(), crate::guard::response_headers))
        .with_state(relay)
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
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp")) {
        return Err(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the offer must be sent as Content-Type: application/sdp"));
    }
    if !valid_stream_name(&stream) {
        return Err(refuse(StatusCode::BAD_REQUEST, "stream name must be 1-64 letters, digits, '-' or '_'"));
    }
    let offer = String::from_utf8(body.to_vec()).map_err(|_| refuse(StatusCode::BAD_REQUEST, "malformed SDP offer: not UTF-8"))?;
    let destinations = choose_destinations(&relay, &stream, &headers).await?;

    let (session, answer) = start_detached(&relay, &stream, offer, destinations).await?.map_err(|e| match e {
        StartError::Full => refuse(StatusCode::SERVICE_UNAVAILABLE, "the relay is at its session limit; try again shortly"),
        StartError::Busy => refuse(StatusCode::CONFLICT, format!("stream {stream:?} already has a live session")),
        StartError::ShuttingDown => refuse(StatusCode::SERVICE_UNAVAILABLE, "the relay is shutting down"),
        StartError::Session(SessionError::Offer(e)) if e.is_unsupported() => refuse(StatusCode::NOT_ACCEPTABLE, e.to_string()),
        StartError::Session(SessionError::Offer(e)) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
        // The relay's own fault (no thread to be had, a codec that would not start), not the offer's.
        StartError::Session(e @ SessionError::Audio(_)) => refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        StartError::Session(e @ SessionError::Transcoder(_)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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

/// Starts the session in a task of its own, so that a client hanging up mid-answer cannot cancel
/// it half-way; a session whose answer nobody is left to read is stopped at once.
async fn start_detached(
    relay: &Arc<Relay>,
    stream: &str,
    offer: String,
    destinations: Vec<(Destination, Origin)>,
) -> Result<Result<(Arc<Session>, String), StartError>, Refusal> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (relay, stream) = (relay.clone(), stream.to_owned());
    tokio::spawn(async move {
        let started = relay.start_session(&stream, offer, destinations).await;
        if let Err(Ok((session, _))) = tx.send(started) {
            session.stop(crate::status::EndReason::Abandoned);
        }
    });
    // A panic in the task drops `tx` (and, unwinding, the reservation and the peer connection).
    rx.await.map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "the session could not be started"))
}

/// The URLs in `X-RTMP-Destination`: one per header line, or several comma-separated on one
/// line (it is a list header, RFC 9110 §5.3, so proxies that join repeated lines — Lambda
/// Function URLs do — keep its meaning; an RTMP URL holds no comma). A header that is there but
/// unreadable is an error, never a reason to fall back to the relay's own destinations.
fn destination_headers(headers: &HeaderMap) -> Result<Vec<&str>, Refusal> {
    let mut urls = Vec::new();
    for value in headers.get_all(DESTINATION_HEADER) {
        let line = value.to_str().map_err(|_| refuse(StatusCode::BAD_REQUEST, "X-RTMP-Destination must be a URL in plain ASCII"))?;
        for url in line.split(',').map(str::trim) {
            if url.is_empty() {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "X-RTMP-Destination holds an empty URL: leave the header out to use the relay's destinations",
                ));
            }
            urls.push(url);
        }
    }
    Ok(urls)
}

/// The relay's own destinations, then the client's when allowed and safe.
async fn choose_destinations(relay: &Relay, stream: &str, headers: &HeaderMap) -> Result<Vec<(Destination, Origin)>, Refusal> {
    let now = jiff::Timestamp::now();
    let mut chosen = Vec::new();
    for template in &relay.config.destinations {
        let destination =
            Destination::parse(template.expose(), stream, now).map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        chosen.push((destination, Origin::Relay));
    }
    let requested = destination_headers(headers)?;
    if !requested.is_empty() && !relay.config.allow_client_destination {
        return Err(refuse(StatusCode::FORBIDDEN, "this relay does not accept client-chosen destinations"));
    }
    let max = relay.config.max_destinations;
    if chosen.len() + requested.len() > max {
        let (own, asked) = (chosen.len(), requested.len());
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "{} destinations asked for ({own} of the relay's, {asked} in X-RTMP-Destination) but a session publishes to at most {max}",
                own + asked
            ),
        ));
    }
    let clients = futures_util::future::try_join_all(requested.into_iter().map(|url| client_destination(relay, stream, url, now))).await?;
    chosen.extend(clients.into_iter().map(|d| (d, Origin::Client)));
    if chosen.is_empty() {
        return Err(refuse(StatusCode::BAD_REQUEST, "this relay has no default destination: name one with the X-RTMP-Destination header"));
    }
    Ok(chosen)
}

/// A destination the client chose, if the relay allows it and it is safe to reach: rtmp(s)://
/// only, an allowed port, public addresses only.
async fn client_destination(relay: &Relay, stream: &str, url: &str, now: jiff::Timestamp) -> Result<Destination, Refusal> {
    if !relay.config.allow_client_destination {
        return Err(refuse(StatusCode::FORBIDDEN, "this relay does not accept client-chosen destinations"));
    }
    let destination = Destination::parse(url, stream, now).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
    let Destination::Rtmp(target) = &destination else {
        return Err(refuse(StatusCode::FORBIDDEN, DestinationError::ClientFile.to_string()));
    };
    let ports = &relay.config.allowed_destination_ports;
    if !ports.contains(&target.port) {
        let allowed = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
        return Err(refuse(StatusCode::FORBIDDEN, DestinationError::PortNotAllowed { port: target.port, allowed }.to_string()));
    }
    match crate::destination::resolve(&relay.config.dns, target, &relay.config.client_destinations).await {
        Ok(_) => Ok(destination),
        Err(e @ DestinationError::PrivateAddress { .. }) => Err(refuse(StatusCode::FORBIDDEN, e.to_string())),
        Err(e) => Err(refuse(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// What `POST …/destinations` takes.
#[derive(serde::Deserialize)]
struct NewDestination {
    url: String,
}

/// `POST /whip/{stream}/{session}/destinations` `{"url": "rtmps://…/app/key"}`: the live
/// session publishes there too, from the next keyframe on. 201 with the destination's status;
/// its `Location` is relative, so it stays right behind a front door.
async fn add_destination(
    State(relay): State<Arc<Relay>>,
    Path((stream, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let session = relay.session(&stream, &id).ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such session"))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")) {
        return Err(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the destination as Content-Type: application/json"));
    }
    let wanted: NewDestination = serde_json::from_slice(&body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("the body must be {{\"url\": \"rtmps://host/app/key\"}}: {e}")))?;
    let destination = client_destination(&relay, &stream, wanted.url.trim(), jiff::Timestamp::now()).await?;
    let report = session.add_destination(destination).await.map_err(control_refusal)?;
    let location = HeaderValue::from_str(&format!("destinations/{}", report.id))
        .map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "bad location"))?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(report)).into_response())
}

/// `DELETE /whip/{stream}/{session}/destinations/{id}`: that destination's stream ends cleanly
/// (deleteStream); the session and its other destinations go on.
async fn remove_destination(
    State(relay): State<Arc<Relay>>,
    Path((stream, id, destination)): Path<(String, String, String)>,
) -> Result<StatusCode, Refusal> {
    let session = relay.session(&stream, &id).ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such session"))?;
    session.remove_destination(&destination).await.map_err(control_refusal)?;
    Ok(StatusCode::OK)
}

fn control_refusal(error: ControlError) -> Refusal {
    let status = match &error {
        ControlError::Fanout(FanoutError::TooMany(_)) => StatusCode::BAD_REQUEST,
        ControlError::Fanout(FanoutError::NotFound) | ControlError::Ended => StatusCode::NOT_FOUND,
        ControlError::Fanout(FanoutError::RelayOwned) => StatusCode::FORBIDDEN,
    };
    refuse(status, error.to_string())
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

/// `HEAD /whip/{stream}`: 200 while the stream has a session here (being set up or live), 404
/// otherwise. How a front door over several relays keeps "one publisher per stream" across them.
async fn stream_in_use(State(relay): State<Arc<Relay>>, Path(stream): Path<String>) -> StatusCode {
    if relay.reserved(&stream) { StatusCode::OK } else { StatusCode::NOT_FOUND }
}

async fn delete_session(State(relay): State<Arc<Relay>>, Path((stream, id)): Path<(String, String)>) -> Result<StatusCode, Refusal> {
    let session = relay.session(&stream, &id).ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such session"))?;
    session.stop(crate::status::EndReason::Deleted);
    session.finished().await;
    Ok(StatusCode::OK)
}

async fn session_status(State(relay): State<Arc<Relay>>, Path((stream, id)): Path<(String, String)>) -> Result<Response, Refusal> {
    let report = relay.report(&stream, &id).ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such session"))?;
    Ok(Json(report).into_response())
}

async fn trickle() -> Response {
    let mut response =
        refuse(StatusCode::METHOD_NOT_ALLOWED, "trickle ICE is not supported: the answer holds every candidate").into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, DELETE, OPTIONS"));
    response
}

async fn healthz(State(relay): State<Arc<Relay>>) -> Response {
    let (status, code) = if relay.accepting() { ("ok", StatusCode::OK) } else { ("draining", StatusCode::SERVICE_UNAVAILABLE) };
    let body = serde_json::json!({
        "status": status,
        "sessions": relay.session_count(),
        "reserved": relay.reservation_count(),
        "protected": relay.protection.enabled(),
    });
    (code, Json(body)).into_response()
}

async fn metrics(State(relay): State<Arc<Relay>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], relay.metrics.encode()).into_response()
}

/// What the web app needs to know about this relay (nothing secret).
async fn web_config(State(relay): State<Arc<Relay>>) -> Json<serde_json::Value> {
    let c = &relay.config;
    let destinations: Vec<String> =
        c.destinations.iter().filter_map(|t| Destination::parse_url(t.expose()).ok()).map(|d| d.display_host()).collect();
    Json(serde_json::json!({
        "token_required": c.token.is_some(),
        "client_destination_allowed": c.allow_client_destination,
        "destinations": destinations,
        "max_destinations": c.max_destinations,
        "playback_url": c.playback_url,
        "ice_servers": c.ice_servers,
    }))
}
