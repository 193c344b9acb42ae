//! ECS task scale-in protection: while the relay carries a live session, it asks its ECS agent
//! (`$ECS_AGENT_URI/task-protection/v1/state`) to protect the task, so that neither a scale-in
//! nor a deploy's rollout stops it; the protection is renewed before it expires and released
//! when the last session ends. A relay that dies holding it loses it when it expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long to wait before asking again after the agent failed or refused.
const RETRY: Duration = Duration::from_secs(5);
const AGENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How protection is asked for.
#[derive(Debug, Clone)]
pub struct ProtectionSettings {
    /// `ECS_AGENT_URI`, which ECS sets in every task's containers.
    pub agent_uri: String,
    /// How long one grant lasts if it is not renewed (1..=2880 minutes).
    pub expires_in_minutes: u32,
    /// How often a grant is renewed while sessions are live; well before it expires.
    pub renew_every: Duration,
}

impl ProtectionSettings {
    pub fn new(agent_uri: String, expires_in_minutes: u32, renew_every: Duration) -> Result<Self, String> {
        if !(1..=2880).contains(&expires_in_minutes) {
            return Err(format!("task protection must last 1..=2880 minutes, not {expires_in_minutes}"));
        }
        if renew_every.is_zero() || renew_every >= Duration::from_secs(u64::from(expires_in_minutes) * 60) {
            return Err(format!(
                "task protection must be renewed more often than it lasts ({renew_every:?} is not under {expires_in_minutes} min)"
            ));
        }
        Ok(Self { agent_uri: agent_uri.trim_end_matches('/').to_owned(), expires_in_minutes, renew_every })
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
    Unreachable(#[from] reqwest::Error),
    #[error("the ECS agent answered {status}: {body}")]
    Refused { status: reqwest::StatusCode, body: String },
}

/// Follows the live session count until `sessions` closes (the relay is gone).
pub async fn maintain(settings: ProtectionSettings, mut sessions: watch::Receiver<usize>, status: Arc<ProtectionStatus>) {
    let client = match reqwest::Client::builder().timeout(AGENT_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "task protection is off: no HTTP client");
            return;
        }
    };
    let url = format!("{}/task-protection/v1/state", settings.agent_uri);
    let mut granted_at: Option<Instant> = None;
    let mut retry_at: Option<Instant> = None;
    loop {
        let wanted = *sessions.borrow_and_update() > 0;
        let renewal_due = granted_at.is_some_and(|at| at.elapsed() >= settings.renew_every);
        let retrying = retry_at.is_some_and(|at| Instant::now() < at);
        if !retrying && (wanted != granted_at.is_some() || (wanted && renewal_due)) {
            match put(&client, &url, wanted, settings.expires_in_minutes).await {
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

async fn put(client: &reqwest::Client, url: &str, enabled: bool, minutes: u32) -> Result<(), AgentError> {
    let body = if enabled {
        serde_json::json!({ "ProtectionEnabled": true, "ExpiresInMinutes": minutes })
    } else {
        serde_json::json!({ "ProtectionEnabled": false })
    };
    let response = client.put(url).json(&body).send().await?;
    let status = response.status();
    let text = response.text().await?;
    // The agent answers 200 with `failure` (or an error status with `error`) when ECS refused.
    let granted = serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v.get("protection").is_some());
    if status.is_success() && granted { Ok(()) } else { Err(AgentError::Refused { status, body: text.chars().take(300).collect() }) }
}
