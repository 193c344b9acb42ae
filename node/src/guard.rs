//! What a WHIP request passes before its handler runs, cheapest check first, so that nothing
//! costly — not even reading the body — is done for a request that will be refused:
//!
//! 1. the origin rule of a relay without a token: only its own pages may publish, and on
//!    loopback only under a loopback host name (a page elsewhere, or a DNS-rebinding name,
//!    must not be able to go live through `ivsctl local` or fill its recordings);
//! 2. the bearer token, before the body is read;
//! 3. a rate limit on POSTs per client address;
//! 4. the body, within a deadline and a size limit.
//!
//! Refusals made before the body was read close the connection, so that a client cannot keep
//! it by trickling the rest. Also here: the headers every response carries.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use subtle::ConstantTimeEq;

use crate::offer::MAX_OFFER_BYTES;
use crate::relay::Relay;

/// A refusal: status and the one line the client sees.
pub struct Refusal(pub StatusCode, pub String);

pub fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal(status, reason.into())
}

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

/// Refused before the body was read: the connection goes with the answer.
fn refuse_and_close(refusal: Refusal) -> Response {
    let mut response = refusal.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Which pages may call the WHIP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginPolicy {
    /// The relay has a token, and the token is the gate: any page may publish.
    AnyOrigin,
    /// No token: the relay's own pages only; `loopback_host` also requires a loopback name
    /// in `Host` (the relay listens on loopback, and a rebinding name is someone else's page).
    SameOrigin { loopback_host: bool },
}

impl OriginPolicy {
    pub fn of(relay: &Relay) -> Self {
        match relay.config.token {
            Some(_) => Self::AnyOrigin,
            None => Self::SameOrigin { loopback_host: relay.config.listen.ip().is_loopback() },
        }
    }

    fn check(self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Self::SameOrigin { loopback_host } = self else { return Ok(()) };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if loopback_host && !is_loopback_host(host) {
            return Err(refuse(StatusCode::FORBIDDEN, "this relay answers only to localhost: the Host header names another site"));
        }
        let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) }; // not a browser
        let origin_host = origin.to_str().ok().and_then(|o| o.strip_prefix("http://").or_else(|| o.strip_prefix("https://")));
        if origin_host.is_some_and(|o| o.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(refuse(
                StatusCode::FORBIDDEN,
                "pages of other sites may not publish to a relay without a token (start it with --token to allow them)",
            ))
        }
    }
}

/// `localhost`, a loopback address, either with a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks `Authorization: Bearer <token>` in constant time, when the relay has a token.
pub fn authorize(relay: &Relay, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = &relay.config.token else { return Ok(()) };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) => Ok(()),
        Some(_) => Err(refuse(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Err(refuse(StatusCode::UNAUTHORIZED, "missing bearer token (Authorization: Bearer …)")),
    }
}

/// POSTs per client address. Keys are whole addresses; a client with many IPv6 addresses has
/// many budgets, which the connection cap still bounds.
pub struct PostRateLimit {
    limiter: RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock>,
    clock: DefaultClock,
}

/// Addresses remembered before idle ones are forgotten.
const RATE_LIMIT_KEYS: usize = 4096;

impl PostRateLimit {
    pub fn per_minute(posts: u32) -> Self {
        let posts = NonZeroU32::new(posts).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new((posts.get() / 3).max(1)).unwrap_or(NonZeroU32::MIN);
        Self { limiter: RateLimiter::hashmap(Quota::per_minute(posts).allow_burst(burst)), clock: DefaultClock::default() }
    }

    /// `Err` with how long the client should wait.
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > RATE_LIMIT_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&client).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The middleware on the WHIP routes.
pub async fn whip_guard(
    State(relay): State<Arc<Relay>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !matches!(*request.method(), Method::POST | Method::GET | Method::HEAD | Method::DELETE | Method::PATCH) {
        // CORS preflights and WHIP's own OPTIONS have nothing to guard; other methods get 405.
        return next.run(request).await;
    }
    if let Err(refusal) = OriginPolicy::of(&relay).check(request.headers()).and_then(|()| authorize(&relay, request.headers())) {
        return refuse_and_close(refusal);
    }
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    if let Err(wait) = relay.post_rate.check(client.ip()) {
        let mut response =
            refuse_and_close(refuse(StatusCode::TOO_MANY_REQUESTS, "too many sessions started from this address; try again shortly"));
        let seconds = wait.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let (parts, body) = request.into_parts();
    match read_body(body, relay.config.http_limits.body_timeout).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(refusal) => refuse_and_close(refusal),
    }
}

async fn read_body(body: Body, deadline: Duration) -> Result<Bytes, Refusal> {
    let collected = tokio::time::timeout(deadline, Limited::new(body, MAX_OFFER_BYTES).collect())
        .await
        .map_err(|_| refuse(StatusCode::REQUEST_TIMEOUT, format!("the request body did not arrive within {} s", deadline.as_secs())))?;
    match collected {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("the offer is larger than {} KiB", MAX_OFFER_BYTES / 1024)))
        }
        Err(_) => Err(refuse(StatusCode::BAD_REQUEST, "the request body could not be read")),
    }
}

/// Headers on every response: CORS when any origin may call (the relay has a token), and the
/// web app's protections.
pub async fn response_headers(State(relay): State<Arc<Relay>>, mut response: Response) -> Response {
    let h = response.headers_mut();
    if OriginPolicy::of(&relay) == OriginPolicy::AnyOrigin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("location, etag, link"));
    }
    h.extend(relay.page_headers.clone());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).expect("value"))).collect()
    }

    #[test]
    fn loopback_host_names_are_recognised_with_and_without_ports() {
        for host in ["localhost", "localhost:8080", "127.0.0.1", "127.0.0.1:8080", "[::1]:8080", "[::1]", "LOCALHOST:1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example", "evil.example:8080", "localhost.evil.example", "10.0.0.1:80", "", "[::2]:80"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn a_tokenless_relay_takes_only_its_own_pages_and_host_names() {
        let local = OriginPolicy::SameOrigin { loopback_host: true };
        assert!(local.check(&headers(&[(header::HOST, "127.0.0.1:8080")])).is_ok(), "non-browser clients send no Origin");
        assert!(local.check(&headers(&[(header::HOST, "127.0.0.1:8080"), (header::ORIGIN, "http://127.0.0.1:8080")])).is_ok());
        assert!(local.check(&headers(&[(header::HOST, "127.0.0.1:8080"), (header::ORIGIN, "https://evil.example")])).is_err());
        assert!(local.check(&headers(&[(header::HOST, "127.0.0.1:8080"), (header::ORIGIN, "null")])).is_err());
        assert!(local.check(&headers(&[(header::HOST, "evil.example")])).is_err());
        assert!(local.check(&headers(&[(header::HOST, "evil.example"), (header::ORIGIN, "http://evil.example")])).is_err());
        let lan = OriginPolicy::SameOrigin { loopback_host: false };
        assert!(lan.check(&headers(&[(header::HOST, "192.168.1.5:8443"), (header::ORIGIN, "https://192.168.1.5:8443")])).is_ok());
        assert!(OriginPolicy::AnyOrigin.check(&headers(&[(header::ORIGIN, "https://studio.example")])).is_ok());
    }

    #[test]
    fn posts_beyond_the_burst_wait() {
        let limit = PostRateLimit::per_minute(6);
        let client: IpAddr = [192, 0, 2, 1].into();
        assert!(limit.check(client).is_ok());
        assert!(limit.check(client).is_ok());
        let wait = limit.check(client).expect_err("burst of 2 used up");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(10), "{wait:?}");
        assert!(limit.check([192, 0, 2, 2].into()).is_ok(), "another address has its own budget");
    }
}
