//! One event end to end. Malformed events and events of other clusters are logged as one line
//! and acknowledged (retrying cannot fix them); AWS errors are returned so that Lambda retries.

use serde_json::Value;

use crate::event::{Decision, TaskEvent, decide};
use crate::network::{Network, NetworkError};
use crate::registry::{Registry, RegistryError, Write};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Network(#[from] NetworkError),
}

/// What an event led to (logged, and returned as the invocation's result).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Running {
        task_arn: String,
        public_ip: Option<String>,
    },
    Stopped {
        task_arn: String,
    },
    /// An older or duplicate event: the table already knows better.
    Stale {
        task_arn: String,
        version: u64,
    },
    Ignored {
        reason: String,
    },
    Malformed {
        reason: String,
    },
}

pub struct Handler {
    pub cluster: String,
    pub network: Network,
    pub registry: Registry,
}

impl Handler {
    pub async fn handle(&self, payload: Value) -> Result<Outcome, HandlerError> {
        let outcome = self.outcome(payload).await?;
        match &outcome {
            Outcome::Malformed { reason } => tracing::warn!(%reason, "malformed event acknowledged"),
            other => tracing::info!(outcome = %serde_json::to_string(other).unwrap_or_default(), "event handled"),
        }
        Ok(outcome)
    }

    async fn outcome(&self, payload: Value) -> Result<Outcome, HandlerError> {
        let event: TaskEvent = match serde_json::from_value(payload) {
            Ok(event) => event,
            Err(e) => return Ok(Outcome::Malformed { reason: e.to_string() }),
        };
        match decide(&event, &self.cluster) {
            Decision::Ignore(reason) => Ok(Outcome::Ignored { reason }),
            Decision::Stopped(task) => Ok(match self.registry.record_stopped(&task).await? {
                Write::Applied => Outcome::Stopped { task_arn: task.task_arn },
                Write::Stale => Outcome::Stale { task_arn: task.task_arn, version: task.version },
            }),
            Decision::Running(task) => {
                let addresses = match &task.eni_id {
                    Some(eni) => self.network.addresses(eni).await?.unwrap_or_default(),
                    None => Default::default(),
                };
                Ok(match self.registry.record_running(&task, &addresses).await? {
                    Write::Applied => Outcome::Running { task_arn: task.task_arn, public_ip: addresses.public_ip },
                    Write::Stale => Outcome::Stale { task_arn: task.task_arn, version: task.version },
                })
            }
        }
    }
}
