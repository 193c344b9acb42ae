//! Which relays the front door may send a session to: the registry's running tasks, each asked
//! for its `/healthz` (over the pinned client) at the moment of the request. Ready relays are
//! ranked by load; draining or silent ones are left out and counted, so that a refusal can say
//! why.

use std::net::{IpAddr, SocketAddr};

use crate::registry::{Registry, RegistryError};

use super::location::relay_tag;

/// A relay task the front door can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddress {
    /// What session URLs call it (see `location`).
    pub tag: String,
    /// `https://ip:port`.
    pub base: String,
}

/// What a relay's `/healthz` said, or that it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Taking sessions; `load` counts live sessions and those being set up.
    Ready {
        load: u64,
    },
    Draining,
    Unreachable(String),
}

/// The registry's relays, ready ones first by load.
#[derive(Debug, Default)]
pub struct Ranking {
    pub ready: Vec<RelayAddress>,
    /// Taking no new sessions, but still carrying live ones.
    pub draining: Vec<RelayAddress>,
    pub unreachable: usize,
}

impl Ranking {
    /// Why no relay could take a session, for the 502.
    pub fn shortfall(&self, full: usize) -> String {
        let registered = self.ready.len() + self.draining.len() + self.unreachable;
        if registered == 0 {
            return "no relay is running (ivsctl status shows the service; ivsctl scale --tasks 1 starts one)".to_owned();
        }
        format!(
            "no relay can take the session: {registered} running, {} draining, {} not answering, {full} full or refusing; try again shortly",
            self.draining.len(),
            self.unreachable
        )
    }
}

pub struct Directory {
    registry: Registry,
    client: reqwest::Client,
    port: u16,
}

impl Directory {
    pub fn new(registry: Registry, client: reqwest::Client, port: u16) -> Self {
        Self { registry, client, port }
    }

    /// Every running relay with a public address.
    pub async fn relays(&self) -> Result<Vec<RelayAddress>, RegistryError> {
        let entries = self.registry.running().await?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| {
                let ip: IpAddr = entry.public_ip.as_deref()?.parse().ok()?;
                Some(RelayAddress { tag: relay_tag(&entry.task_arn), base: format!("https://{}", SocketAddr::new(ip, self.port)) })
            })
            .collect())
    }

    /// The relay a session URL's tag names.
    pub async fn find(&self, tag: &str) -> Result<Option<RelayAddress>, RegistryError> {
        Ok(self.relays().await?.into_iter().find(|relay| relay.tag == tag))
    }

    /// Every relay asked at once; ready ones by load, then by tag (so that equal loads spread
    /// the same way whichever Lambda instance answers).
    pub async fn ranked(&self) -> Result<Ranking, RegistryError> {
        let relays = self.relays().await?;
        let health = futures_util::future::join_all(relays.iter().map(|relay| self.health(relay))).await;
        let mut ranking = Ranking::default();
        let mut ready = Vec::new();
        for (relay, health) in relays.into_iter().zip(health) {
            match health {
                Health::Ready { load } => ready.push((load, relay)),
                Health::Draining => ranking.draining.push(relay),
                Health::Unreachable(reason) => {
                    tracing::warn!(relay = %relay.tag, %reason, "relay skipped: /healthz did not answer");
                    ranking.unreachable += 1;
                }
            }
        }
        ready.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.tag.cmp(&y.tag)));
        ranking.ready = ready.into_iter().map(|(_, relay)| relay).collect();
        Ok(ranking)
    }

    async fn health(&self, relay: &RelayAddress) -> Health {
        let response = match self.client.get(format!("{}/healthz", relay.base)).timeout(super::PROBE_TIMEOUT).send().await {
            Ok(response) => response,
            Err(e) => return Health::Unreachable(super::error_chain(&e)),
        };
        let body: serde_json::Value = match response.json().await {
            Ok(body) => body,
            Err(e) => return Health::Unreachable(format!("/healthz is not JSON: {e}")),
        };
        match body["status"].as_str() {
            Some("ok") => Health::Ready { load: body["reserved"].as_u64().or_else(|| body["sessions"].as_u64()).unwrap_or(0) },
            Some("draining") => Health::Draining,
            other => Health::Unreachable(format!("/healthz says {other:?}")),
        }
    }
}
