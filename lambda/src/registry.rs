//! The relay registry table: one item per relay task, keyed by task ARN.
//!
//! Every write is conditional on the event's version being newer than the stored one, so events
//! may arrive in any order or twice: a late RUNNING never resurrects a stopped task. Stopped
//! tasks are kept as `STOPPED` (the tombstone that wins over late events) and expire through the
//! table's TTL attribute `expires_at`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::event::{RunningTask, StoppedTask};
use crate::network::Addresses;

pub const KEY: &str = "task_arn";
/// How long a stopped task's tombstone stays before DynamoDB's TTL removes it.
pub const TOMBSTONE_SECONDS: u64 = 3600;

#[derive(Debug, thiserror::Error)]
#[error("DynamoDB {operation} on table {table} failed: {code}: {message}")]
pub struct RegistryError {
    pub operation: &'static str,
    pub table: String,
    pub code: String,
    pub message: String,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Applied,
    /// The table already holds this or a newer version of the task.
    Stale,
}

/// A running relay, as `ivsctl status` and the web app read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RelayEntry {
    pub task_arn: String,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub availability_zone: Option<String>,
    pub started_at: Option<String>,
    pub revision: Option<u64>,
    pub note: Option<String>,
}

pub struct Registry {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Registry {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { dynamodb, table: table.into() }
    }

    fn error<E: ProvideErrorMetadata + std::fmt::Display>(&self, operation: &'static str, e: &E) -> RegistryError {
        RegistryError {
            operation,
            table: self.table.clone(),
            code: e.code().unwrap_or("unknown").to_owned(),
            message: e.message().map_or_else(|| e.to_string(), str::to_owned),
        }
    }

    pub async fn record_running(&self, task: &RunningTask, addresses: &Addresses) -> Result<Write, RegistryError> {
        let mut item = HashMap::from([
            (KEY.to_owned(), s(&task.task_arn)),
            ("status".to_owned(), s("RUNNING")),
            ("last_version".to_owned(), n(task.version)),
            ("updated_at".to_owned(), n(now())),
        ]);
        let optional = [
            ("public_ip", addresses.public_ip.clone()),
            ("private_ip", addresses.private_ip.clone().or_else(|| task.private_ip.clone())),
            ("availability_zone", task.availability_zone.clone()),
            ("started_at", task.started_at.clone()),
            ("task_definition_arn", task.task_definition_arn.clone()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                item.insert(name.to_owned(), s(value));
            }
        }
        if let Some(revision) = task.revision() {
            item.insert("revision".to_owned(), n(revision));
        }
        if addresses.public_ip.is_none() {
            item.insert(
                "note".to_owned(),
                s("no public IP: the task runs in a subnet without public addresses (or assignPublicIp is DISABLED)"),
            );
        }
        self.put_if_newer(item, task.version).await
    }

    pub async fn record_stopped(&self, task: &StoppedTask) -> Result<Write, RegistryError> {
        let mut item = HashMap::from([
            (KEY.to_owned(), s(&task.task_arn)),
            ("status".to_owned(), s("STOPPED")),
            ("last_version".to_owned(), n(task.version)),
            ("updated_at".to_owned(), n(now())),
            ("expires_at".to_owned(), n(now() + TOMBSTONE_SECONDS)),
        ]);
        if let Some(reason) = &task.reason {
            item.insert("stopped_reason".to_owned(), s(reason));
        }
        self.put_if_newer(item, task.version).await
    }

    async fn put_if_newer(&self, item: HashMap<String, AttributeValue>, version: u64) -> Result<Write, RegistryError> {
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key) OR last_version < :version")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_values(":version", n(version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Write::Applied),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(Write::Stale),
            Err(e) => Err(self.error("PutItem", &e)),
        }
    }

    /// Every task recorded as running.
    pub async fn running(&self) -> Result<Vec<RelayEntry>, RegistryError> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.table)
                .filter_expression("#status = :running")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":running", s("RUNNING"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.error("Scan", &e))?;
            let text = |item: &HashMap<String, AttributeValue>, name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            for item in page.items() {
                entries.push(RelayEntry {
                    task_arn: text(item, KEY).unwrap_or_default(),
                    public_ip: text(item, "public_ip"),
                    private_ip: text(item, "private_ip"),
                    availability_zone: text(item, "availability_zone"),
                    started_at: text(item, "started_at"),
                    revision: item.get("revision").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()),
                    note: text(item, "note"),
                });
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        entries.sort_by(|a, b| a.task_arn.cmp(&b.task_arn));
        Ok(entries)
    }
}
