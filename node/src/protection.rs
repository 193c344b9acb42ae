//! ECS task scale-in protection: while the relay carries a live session, it asks its ECS agent
//! (`$ECS_AGENT_URI/task-protection/v1/state`) to protect the task, so that neither a scale-in
//! nor a deploy's rollout stops it; the protection is renewed before it expires and released
//! when the last session ends. A relay that dies holding it loses it when it expires.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long to wait before asking again after the agent failed or refused.
const RETRY: Duration = Duration::from_secs(5);
const AGENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How protection is asked for.
#[derive(Debug, Clone)]
pub struct ProtectionSettings {
    /// The agent's address, from `ECS_AGENT_URI` (an `http://` URL with an IP address, which
    /// ECS sets in every task's containers).
    agent: SocketAddr,
    /// The endpoint's path on it.
    path: String,
    /// How long one grant lasts if it is not renewed (1..=2880 minutes).
    pub expires_in_minutes: u32,
    /// How often a grant is renewed while sessions are live; well before it expires.
    pub renew_every: Duration,
}

impl ProtectionSettings {
    pub fn new(agent_uri: &str, expires_in_minutes: u32, renew_every: Duration) -> Result<Self, String> {
        let url = url::Url::parse(agent_uri).map_err(|e| format!("ECS_AGENT_URI is not a URL: {e}"))?;
        let ip: Option<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(ip.into()),
            Some(url::Host::Ipv6(ip)) => Some(ip.into()),
            _ => None,
        };
        let (Some(ip), "http") = (ip, url.scheme()) else {
            return Err("ECS_AGENT_URI must be http:// with an IP address, as ECS sets it".to_owned());
        };
        let agent = SocketAddr::new(ip, url.port().unwrap_or(80));
        let path = format!("{}/task-protection/v1/state", url.path().trim_end_matches('/'));
        if !(1..=2880).contains(&expires_in_minutes) {
            return Err(format!("task protection must last 1..=2880 minutes, not {expires_in_minutes}"));
        }
        if renew_every.is_zero() || renew_every >= Duration::from_secs(u64::from(expires_in_minutes) * 60) {
            return Err(format!(
                "task protection must be renewed more often than it lasts ({renew_every:?} is not under {expires_in_minutes} min)"
            ));
        }
        Ok(Self { agent, path, expires_in_minutes, renew_every })
    }
}

/// Whether the task holds protection now, for `/healthz`.
#[derive(Debug, Default)]
pub struct ProtectionStatus {
    enabled: AtomicBool,
}

impl ProtectionStatus {
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }
}

#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error("the ECS agent could not be reached: {0}")]
    Unreachable(#[from] std::io::Error),
    #[error("the ECS agent's HTTP failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("the ECS agent did not answer within {AGENT_TIMEOUT:?}")]
    Timeout,
    #[error("the ECS agent answered {status}: {body}")]
    Refused { status: StatusCode, body: String },
}

/// Follows the live session count until `sessions` closes (the relay is gone).
pub async fn maintain(settings: ProtectionSettings, mut sessions: watch::Receiver<usize>, status: Arc<ProtectionStatus>) {
    let mut granted_at: Option<Instant> = None;
    let mut retry_at: Option<Instant> = None;
    loop {
        let wanted = *sessions.borrow_and_update() > 0;
        let renewal_due = granted_at.is_some_and(|at| at.elapsed() >= settings.renew_every);
        let retrying = retry_at.is_some_and(|at| Instant::now() < at);
        if !retrying && (wanted != granted_at.is_some() || (wanted && renewal_due)) {
            let asked = tokio::time::timeout(AGENT_TIMEOUT, put(&settings, wanted)).await.unwrap_or(Err(AgentError::Timeout));
            match asked {
                Ok(()) => {
                    granted_at = wanted.then(Instant::now);
                    retry_at = None;
                    status.enabled.store(wanted, Ordering::SeqCst);
                    tracing::info!(enabled = wanted, "task scale-in protection set");
                }
                Err(e) => {
                    tracing::warn!(enabled = wanted, error = %e, "task scale-in protection not set; trying again in {RETRY:?}");
                    retry_at = Some(Instant::now() + RETRY);
                }
            }
        }
        let next = retry_at.or_else(|| granted_at.map(|at| at + settings.renew_every));
        let wake = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = sessions.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = wake => {}
        }
    }
}

/// One PUT to the agent, on a connection of its own (a call every few minutes needs no pool).
async fn put(settings: &ProtectionSettings, enabled: bool) -> Result<(), AgentError> {
    let body = if enabled {
        serde_json::json!({ "ProtectionEnabled": true, "ExpiresInMinutes": settings.expires_in_minutes })
    } else {
        serde_json::json!({ "ProtectionEnabled": false })
    };
    let stream = tokio::net::TcpStream::connect(settings.agent).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::put(settings.path.as_str())
        .header(header::HOST, settings.agent.to_string())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| AgentError::Refused { status: StatusCode::BAD_REQUEST, body: e.to_string() })?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let text = String::from_utf8_lossy(&response.into_body().collect().await?.to_bytes()).into_owned();
    // The agent answers 200 with `failure` (or an error status with `error`) when ECS refused.
    let granted = serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v.get("protection").is_some());
    if status.is_success() && granted { Ok(()) } else { Err(AgentError::Refused { status, body: text.chars().take(300).collect() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_uri_is_an_http_ip_address_and_the_timing_is_sane() {
        let settings = ProtectionSettings::new("http://169.254.170.2/v4/abc", 10, Duration::from_secs(240)).expect("ECS's shape");
        assert_eq!(settings.agent, SocketAddr::from(([169, 254, 170, 2], 80)));
        assert_eq!(settings.path, "/v4/abc/task-protection/v1/state");
        assert!(ProtectionSettings::new("https://169.254.170.2/v4/abc", 10, Duration::from_secs(240)).is_err());
        assert!(ProtectionSettings::new("http://agent.local/v4/abc", 10, Duration::from_secs(240)).is_err());
        assert!(ProtectionSettings::new("http://127.0.0.1:9/v4", 1, Duration::from_secs(60)).is_err(), "renewal after expiry");
        assert!(ProtectionSettings::new("http://127.0.0.1:9/v4", 0, Duration::from_secs(1)).is_err());
    }
}
