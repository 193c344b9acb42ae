//! ECS Task State Change events (as EventBridge delivers them) and what each one means for the
//! registry. Pure: no AWS calls.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};

/// The part of an ECS task state change the registry uses.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStateChange {
    pub cluster_arn: String,
    pub task_arn: String,
    pub last_status: String,
    #[serde(default)]
    pub desired_status: Option<String>,
    /// Increases with every change of the task: what makes writes order-safe.
    pub version: u64,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub task_definition_arn: Option<String>,
    #[serde(default)]
    pub stopped_reason: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Attachment {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub details: Vec<Detail>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Detail {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

pub type TaskEvent = EventBridgeEvent<TaskStateChange>;

/// A task that runs and serves: to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTask {
    pub task_arn: String,
    pub version: u64,
    pub eni_id: Option<String>,
    pub private_ip: Option<String>,
    pub availability_zone: Option<String>,
    pub started_at: Option<String>,
    pub task_definition_arn: Option<String>,
}

impl RunningTask {
    /// The task definition's revision (the number after the last `:`).
    pub fn revision(&self) -> Option<u64> {
        self.task_definition_arn.as_deref()?.rsplit(':').next()?.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedTask {
    pub task_arn: String,
    pub version: u64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Running(RunningTask),
    /// Stopping or stopped: no longer a relay to send anyone to.
    Stopped(StoppedTask),
    /// Nothing to record (another cluster, a task still starting).
    Ignore(String),
}

/// The cluster's name, from a name or an ARN (`arn:aws:ecs:region:account:cluster/NAME`).
fn cluster_name(name_or_arn: &str) -> &str {
    name_or_arn.rsplit_once(":cluster/").map_or(name_or_arn, |(_, name)| name)
}

pub fn decide(event: &TaskEvent, cluster: &str) -> Decision {
    let task = &event.detail;
    if cluster_name(&task.cluster_arn) != cluster_name(cluster) {
        return Decision::Ignore(format!("task of another cluster ({})", task.cluster_arn));
    }
    let stopping = matches!(task.last_status.as_str(), "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" | "STOPPED")
        || task.desired_status.as_deref() == Some("STOPPED");
    if stopping {
        return Decision::Stopped(StoppedTask {
            task_arn: task.task_arn.clone(),
            version: task.version,
            reason: task.stopped_reason.clone(),
        });
    }
    if task.last_status != "RUNNING" {
        return Decision::Ignore(format!("task is {}", task.last_status));
    }
    let eni = task.attachments.iter().find(|a| a.kind.eq_ignore_ascii_case("eni") || a.kind == "ElasticNetworkInterface");
    let detail = |name: &str| eni.and_then(|a| a.details.iter().find(|d| d.name == name)).and_then(|d| d.value.clone());
    Decision::Running(RunningTask {
        task_arn: task.task_arn.clone(),
        version: task.version,
        eni_id: detail("networkInterfaceId"),
        private_ip: detail("privateIPv4Address"),
        availability_zone: task.availability_zone.clone(),
        started_at: task.started_at.clone(),
        task_definition_arn: task.task_definition_arn.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(cluster: &str, last: &str, desired: &str, version: u64) -> TaskEvent {
        serde_json::from_value(serde_json::json!({
            "version": "0", "id": "e1", "detail-type": "ECS Task State Change", "source": "aws.ecs",
            "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {
                "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{cluster}"),
                "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/ivs/abc", "lastStatus": last, "desiredStatus": desired,
                "version": version, "availabilityZone": "us-east-1a", "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/ivs-relay:7",
                "attachments": [{"id": "a", "type": "eni", "status": "ATTACHED", "details": [
                    {"name": "subnetId", "value": "subnet-1"}, {"name": "networkInterfaceId", "value": "eni-1"}, {"name": "privateIPv4Address", "value": "172.31.0.9"}]}]
            }
        }))
        .expect("event parses")
    }

    #[test]
    fn a_running_task_is_recorded_with_its_eni() {
        let Decision::Running(task) = decide(&event("ivs", "RUNNING", "RUNNING", 3), "ivs") else { panic!("running") };
        assert_eq!(
            (task.eni_id.as_deref(), task.private_ip.as_deref(), task.version, task.revision()),
            (Some("eni-1"), Some("172.31.0.9"), 3, Some(7))
        );
    }

    #[test]
    fn stopping_in_any_form_removes_the_relay() {
        for (last, desired) in [("STOPPED", "STOPPED"), ("DEPROVISIONING", "STOPPED"), ("RUNNING", "STOPPED"), ("STOPPING", "STOPPED")] {
            assert!(matches!(decide(&event("ivs", last, desired, 5), "ivs"), Decision::Stopped(_)), "{last}/{desired}");
        }
    }

    #[test]
    fn starting_tasks_and_other_clusters_are_ignored() {
        assert!(matches!(decide(&event("ivs", "PENDING", "RUNNING", 1), "ivs"), Decision::Ignore(_)));
        assert!(matches!(decide(&event("other", "RUNNING", "RUNNING", 1), "ivs"), Decision::Ignore(_)));
        assert!(matches!(
            decide(&event("ivs", "RUNNING", "RUNNING", 1), "arn:aws:ecs:us-east-1:123456789012:cluster/ivs"),
            Decision::Running(_)
        ));
    }
}
