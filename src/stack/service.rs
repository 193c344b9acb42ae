//! The relay's Fargate service: public IPs, the relay security group, a deployment circuit
//! breaker that rolls back a revision whose tasks don't come up.

use std::time::Duration;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentRolloutState, DesiredStatus,
    LaunchType, NetworkConfiguration, PropagateTags, Service, ServiceField, Tag,
};
use indicatif::ProgressBar;
use serde::Serialize;

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY, linked_role, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;
use crate::wait::{PROPAGATION, retrying_while};

/// The stack's relay service.
pub struct RelayService<'a>(pub &'a Names);

/// The service as the stack wants it.
pub struct ServiceSpec {
    /// `None` only in a dry run that registers a new revision.
    pub task_definition: Option<String>,
    /// `None`: keep the live count (`scale` owns it); 1 for a new service.
    pub desired_count: Option<i32>,
    pub subnets: Vec<String>,
    /// `None` only in a dry run that creates the group.
    pub security_group: Option<String>,
}

impl ServiceSpec {
    fn task_definition(&self, resource: &str) -> Result<&str, AwsError> {
        self.task_definition
            .as_deref()
            .ok_or_else(|| AwsError::new(resource, op!("ecs:CreateService"), "Internal", "no task definition to run"))
    }
}

/// What `status` and `scale` report about the service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceState {
    pub status: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub task_definition: String,
    pub deployments: Vec<DeploymentState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentState {
    pub status: String,
    pub rollout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
}

fn label(names: &Names) -> String {
    format!("ECS service {}", names.service)
}

async fn read(aws: &Aws, names: &Names) -> Result<Option<Service>, AwsError> {
    let found =
        aws.ecs.describe_services().cluster(&names.cluster).services(&names.service).include(ServiceField::Tags).send().await.or_missing(
            &["ClusterNotFoundException"],
            &label(names),
            op!("ecs:DescribeServices"),
        )?;
    // A deleted service is DRAINING, then INACTIVE; either way a new one may take its name.
    Ok(found.and_then(|f| f.services().iter().find(|s| s.status() == Some("ACTIVE")).cloned()))
}

fn is_ours(service: &Service, names: &Names) -> bool {
    super::tagged(service.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))), names)
}

fn network(spec: &ServiceSpec, resource: &str) -> Result<NetworkConfiguration, AwsError> {
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(spec.subnets.clone()))
        .set_security_groups(spec.security_group.clone().map(|g| vec![g]))
        .assign_public_ip(AssignPublicIp::Enabled)
        .build()
        .map_err(|e| AwsError::new(resource, op!("ecs:CreateService"), "InvalidRequest", e.to_string()))?;
    Ok(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
}

fn deployment() -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .deployment_circuit_breaker(DeploymentCircuitBreaker::builder().enable(true).rollback(true).build())
        .maximum_percent(200)
        .minimum_healthy_percent(100)
        .build()
}

/// What differs between the live service and `spec`.
fn differences(live: &Service, spec: &ServiceSpec) -> Vec<String> {
    let mut found = Vec::new();
    match spec.task_definition.as_deref() {
        None => found.push("task definition → the new revision".to_owned()),
        Some(wanted) if live.task_definition() != Some(wanted) => {
            found.push(format!("task definition → {}", wanted.rsplit('/').next().unwrap_or(wanted)));
        }
        Some(_) => {}
    }
    if let Some(count) = spec.desired_count.filter(|&n| n != live.desired_count()) {
        found.push(format!("desired count {} → {count}", live.desired_count()));
    }
    let vpc = live.network_configuration().and_then(|n| n.awsvpc_configuration());
    let mut subnets = vpc.map(|v| v.subnets().to_vec()).unwrap_or_default();
    subnets.sort();
    let mut wanted_subnets = spec.subnets.clone();
    wanted_subnets.sort();
    if subnets != wanted_subnets {
        found.push("subnets".to_owned());
    }
    let groups: Vec<&str> = vpc.map(|v| v.security_groups().iter().map(String::as_str).collect()).unwrap_or_default();
    if groups != spec.security_group.as_deref().into_iter().collect::<Vec<_>>() {
        found.push("security group".to_owned());
    }
    if vpc.and_then(|v| v.assign_public_ip()) != Some(&AssignPublicIp::Enabled) {
        found.push("public IP".to_owned());
    }
    // Only judged when AWS reports it (some emulators drop it).
    if let Some(breaker) = live.deployment_configuration().and_then(|d| d.deployment_circuit_breaker())
        && !(breaker.enable() && breaker.rollback())
    {
        found.push("deployment circuit breaker".to_owned());
    }
    found
}

impl Resource for RelayService<'_> {
    type Live = Service;
    type Desired = ServiceSpec;
    type Output = ();

    fn label(&self) -> String {
        label(self.0)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Service>, AwsError> {
        read(aws, self.0).await
    }

    fn is_ours(&self, live: &Service) -> bool {
        is_ours(live, self.0)
    }

    fn diff(&self, desired: &ServiceSpec, live: &Service) -> Action {
        Action::update_if(differences(live, desired))
    }

    fn output(&self, _: &Aws, _: &ServiceSpec, _: Option<&Service>) {}

    async fn create(&self, aws: &Aws, spec: &ServiceSpec) -> Result<(), AwsError> {
        let (names, resource) = (self.0, self.label());
        let network = network(spec, &resource)?;
        let task_definition = spec.task_definition(&resource)?;
        retrying_while(linked_role::not_ready, PROPAGATION, || {
            aws.ecs
                .create_service()
                .cluster(&names.cluster)
                .service_name(&names.service)
                .task_definition(task_definition)
                .desired_count(spec.desired_count.unwrap_or(1))
                .launch_type(LaunchType::Fargate)
                .network_configuration(network.clone())
                .deployment_configuration(deployment())
                .propagate_tags(PropagateTags::Service)
                .enable_ecs_managed_tags(true)
                .tags(Tag::builder().key(TAG_KEY).value(names.tag_value()).build())
                .send()
        })
        .await
        .on(&resource, op!("ecs:CreateService"))?;
        Ok(())
    }

    async fn update(&self, aws: &Aws, spec: &ServiceSpec, _: &Service) -> Result<(), AwsError> {
        let (names, resource) = (self.0, self.label());
        aws.ecs
            .update_service()
            .cluster(&names.cluster)
            .service(&names.service)
            .task_definition(spec.task_definition(&resource)?)
            .set_desired_count(spec.desired_count)
            .network_configuration(network(spec, &resource)?)
            .deployment_configuration(deployment())
            .send()
            .await
            .on(&resource, op!("ecs:UpdateService"))?;
        Ok(())
    }

    /// Scales the service to zero and deletes it; its tasks drain in the background.
    async fn delete(&self, aws: &Aws, _: Service) -> Result<(), AwsError> {
        let names = self.0;
        aws.ecs.delete_service().cluster(&names.cluster).service(&names.service).force(true).send().await.or_missing(
            &["ServiceNotFoundException", "ClusterNotFoundException"],
            &self.label(),
            op!("ecs:DeleteService"),
        )?;
        Ok(())
    }

    fn describe(&self, live: &Service) -> Observed {
        Observed::present(
            live.service_arn().map(str::to_owned),
            format!("{}, {} of {} tasks running", live.status().unwrap_or_default(), live.running_count(), live.desired_count()),
        )
    }
}

/// Sets the desired count of this stack's service.
pub async fn set_desired_count(aws: &Aws, names: &Names, count: i32) -> Result<(), AwsError> {
    let resource = label(names);
    match read(aws, names).await? {
        None => Err(AwsError::new(
            resource,
            op!("ecs:DescribeServices"),
            "ServiceNotFound",
            "the stack has no relay service: run `ivsctl deploy` first",
        )),
        Some(live) if !is_ours(&live, names) => Err(not_ours(&resource, &names.stack)),
        Some(_) => {
            aws.ecs
                .update_service()
                .cluster(&names.cluster)
                .service(&names.service)
                .desired_count(count)
                .send()
                .await
                .on(&resource, op!("ecs:UpdateService"))?;
            Ok(())
        }
    }
}

fn state_of(service: &Service) -> ServiceState {
    ServiceState {
        status: service.status().unwrap_or_default().to_owned(),
        desired: service.desired_count(),
        running: service.running_count(),
        pending: service.pending_count(),
        task_definition: service.task_definition().unwrap_or_default().to_owned(),
        deployments: service
            .deployments()
            .iter()
            .map(|d| DeploymentState {
                status: d.status().unwrap_or_default().to_owned(),
                rollout: d.rollout_state().map_or("", DeploymentRolloutState::as_str).to_owned(),
                reason: d.rollout_state_reason().map(str::to_owned),
                task_definition: d.task_definition().unwrap_or_default().to_owned(),
                desired: d.desired_count(),
                running: d.running_count(),
            })
            .collect(),
    }
}

pub async fn state(aws: &Aws, names: &Names) -> Result<Option<ServiceState>, AwsError> {
    Ok(read(aws, names).await?.filter(|s| is_ours(s, names)).as_ref().map(state_of))
}

/// Why the service cannot reach its desired count, as far as ECS tells.
async fn latest_stop_reason(aws: &Aws, names: &Names) -> Result<Option<String>, AwsError> {
    let resource = label(names);
    let stopped = aws
        .ecs
        .list_tasks()
        .cluster(&names.cluster)
        .service_name(&names.service)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .on(&resource, op!("ecs:ListTasks"))?;
    if stopped.task_arns().is_empty() {
        return Ok(None);
    }
    let tasks = aws
        .ecs
        .describe_tasks()
        .cluster(&names.cluster)
        .set_tasks(Some(stopped.task_arns().to_vec()))
        .send()
        .await
        .on(&resource, op!("ecs:DescribeTasks"))?;
    Ok(tasks.tasks().iter().filter(|t| t.stopped_at().is_some()).max_by_key(|t| t.stopped_at().map(|at| at.secs())).and_then(|t| {
        let container = t.containers().iter().find_map(|c| c.reason()).map(|r| format!(" ({r})")).unwrap_or_default();
        t.stopped_reason().map(|r| format!("{r}{container}"))
    }))
}

/// Where a deployment of a new revision stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// The PRIMARY deployment runs the revision and its rollout is COMPLETED.
    Done,
    InProgress,
    /// The circuit breaker gave up on it (and rolled back), or the service runs another revision.
    Failed(String),
}

/// Judges a rollout of `registered` from the service's deployments. Success is only the PRIMARY
/// deployment on exactly that revision, COMPLETED: a service the circuit breaker rolled back is
/// steady too, just on the previous revision.
pub fn rollout(state: &ServiceState, registered: &str) -> Rollout {
    let completed = DeploymentRolloutState::Completed.as_str();
    if let Some(failed) =
        state.deployments.iter().find(|d| d.task_definition == registered && d.rollout == DeploymentRolloutState::Failed.as_str())
    {
        return Rollout::Failed(failed.reason.clone().unwrap_or_else(|| "the deployment failed".to_owned()));
    }
    let Some(primary) = state.deployments.iter().find(|d| d.status == "PRIMARY") else { return Rollout::InProgress };
    if primary.task_definition != registered {
        let reason = primary.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        return Rollout::Failed(format!("the service runs {} instead of {}{reason}", short(&primary.task_definition), short(registered)));
    }
    if primary.rollout == completed && primary.running == primary.desired { Rollout::Done } else { Rollout::InProgress }
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Polls the service every 5 s until `done` judges its state finished (`Ok(true)`) or failed
/// (`Err(reason)`), showing progress on `bar`; fails at the timeout.
async fn wait(
    aws: &Aws,
    names: &Names,
    count: i32,
    timeout: Duration,
    bar: &ProgressBar,
    done: impl Fn(&ServiceState) -> Result<bool, String>,
) -> Result<ServiceState, AwsError> {
    let resource = label(names);
    let deadline = tokio::time::Instant::now() + timeout;
    bar.set_length(u64::try_from(count).unwrap_or(0));
    loop {
        let Some(state) = state(aws, names).await? else {
            return Err(AwsError::new(resource, "wait", "ServiceNotFound", "the service disappeared while waiting for it"));
        };
        bar.set_position(u64::try_from(state.running).unwrap_or(0));
        bar.set_message(format!("{} running, {} pending, {} deployment(s)", state.running, state.pending, state.deployments.len()));
        let stop =
            async || latest_stop_reason(aws, names).await.map(|r| r.map(|r| format!("; last stopped task: {r}")).unwrap_or_default());
        match done(&state) {
            Ok(true) => return Ok(state),
            Err(reason) => {
                let stop = stop().await?;
                return Err(AwsError::new(
                    resource,
                    "deployment",
                    "RolloutFailed",
                    format!("{reason}{stop}: see the relay log group {}", names.relay_log_group),
                ));
            }
            Ok(false) if tokio::time::Instant::now() >= deadline => {
                let stop = stop().await?;
                let protected = still_protected(&state);
                return Err(AwsError::new(
                    resource,
                    "wait",
                    "Timeout",
                    format!(
                        "{} of {count} tasks running after {} s{stop}{protected}; `ivsctl status` shows more",
                        state.running,
                        timeout.as_secs()
                    ),
                ));
            }
            Ok(false) => tokio::time::sleep(Duration::from_secs(5)).await,
        }
    }
}

/// Why a rollout may still be going on at the timeout: relays carrying streams hold scale-in
/// protection, which ECS waits out before it stops them.
fn still_protected(state: &ServiceState) -> String {
    let older: i32 = state.deployments.iter().filter(|d| d.status != "PRIMARY").map(|d| d.running).sum();
    if older == 0 {
        return String::new();
    }
    format!(
        "; {older} task(s) of an earlier revision still run: relays with live streams hold scale-in protection and are replaced once their streams end"
    )
}

/// Waits until the service's PRIMARY deployment runs `registered` to completion (see [`rollout`]).
pub async fn wait_for_rollout(
    aws: &Aws,
    names: &Names,
    registered: &str,
    timeout: Duration,
    bar: &ProgressBar,
) -> Result<ServiceState, AwsError> {
    let count = state(aws, names).await?.map_or(0, |s| s.desired);
    wait(aws, names, count, timeout, bar, |state| match rollout(state, registered) {
        Rollout::Done => Ok(true),
        Rollout::InProgress => Ok(false),
        Rollout::Failed(reason) => Err(reason),
    })
    .await
}

/// Waits until `count` tasks run and one deployment remains; fails when the circuit breaker gives
/// up on a deployment.
pub async fn wait_until_running(
    aws: &Aws,
    names: &Names,
    count: i32,
    timeout: Duration,
    bar: &ProgressBar,
) -> Result<ServiceState, AwsError> {
    wait(aws, names, count, timeout, bar, |state| {
        if let Some(failed) = state.deployments.iter().find(|d| d.rollout == DeploymentRolloutState::Failed.as_str()) {
            return Err(failed.reason.clone().unwrap_or_else(|| "the deployment failed".to_owned()));
        }
        Ok(state.running == count && state.pending == 0 && state.deployments.len() <= 1)
    })
    .await
}

/// A running task of the service as ECS (not the registry) knows it.
#[derive(Debug, Clone)]
pub struct RunningTask {
    pub task_arn: String,
    pub eni: Option<String>,
    pub availability_zone: Option<String>,
    pub started_at: Option<String>,
}

/// The service's running tasks, from ECS.
pub async fn running_tasks(aws: &Aws, names: &Names) -> Result<Vec<RunningTask>, AwsError> {
    let resource = label(names);
    let listed = aws
        .ecs
        .list_tasks()
        .cluster(&names.cluster)
        .service_name(&names.service)
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .or_missing(&["ClusterNotFoundException", "ServiceNotFoundException"], &resource, op!("ecs:ListTasks"))?;
    let arns = listed.map(|l| l.task_arns().to_vec()).unwrap_or_default();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let described =
        aws.ecs.describe_tasks().cluster(&names.cluster).set_tasks(Some(arns)).send().await.on(&resource, op!("ecs:DescribeTasks"))?;
    Ok(described
        .tasks()
        .iter()
        .filter(|t| t.last_status() == Some("RUNNING"))
        .map(|t| RunningTask {
            task_arn: t.task_arn().unwrap_or_default().to_owned(),
            eni: t
                .attachments()
                .iter()
                .flat_map(|a| a.details())
                .find(|d| d.name() == Some("networkInterfaceId"))
                .and_then(|d| d.value())
                .map(str::to_owned),
            availability_zone: t.availability_zone().map(str::to_owned),
            started_at: t.started_at().map(|at| at.to_string()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "arn:aws:ecs:us-east-1:1:task-definition/ivs-relay:8";
    const OLD: &str = "arn:aws:ecs:us-east-1:1:task-definition/ivs-relay:7";

    fn deployment(status: &str, rollout: &str, task_definition: &str, running: i32) -> DeploymentState {
        DeploymentState {
            status: status.into(),
            rollout: rollout.into(),
            reason: Some(format!("ECS deployment {rollout}")),
            task_definition: task_definition.into(),
            desired: 2,
            running,
        }
    }

    fn service(deployments: Vec<DeploymentState>) -> ServiceState {
        ServiceState { status: "ACTIVE".into(), desired: 2, running: 2, pending: 0, task_definition: NEW.into(), deployments }
    }

    #[test]
    fn a_timeout_with_old_tasks_still_running_says_they_may_be_protected() {
        let rolling = service(vec![deployment("PRIMARY", "IN_PROGRESS", NEW, 1), deployment("ACTIVE", "COMPLETED", "old:1", 2)]);
        let hint = still_protected(&rolling);
        assert!(hint.contains("2 task(s) of an earlier revision") && hint.contains("scale-in protection"), "{hint}");
        assert_eq!(still_protected(&service(vec![deployment("PRIMARY", "IN_PROGRESS", NEW, 1)])), "");
    }

    fn live(task_definition: &str, count: i32, subnets: &[&str], group: &str) -> Service {
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(subnets.iter().map(|s| (*s).to_owned()).collect()))
            .security_groups(group)
            .assign_public_ip(AssignPublicIp::Enabled)
            .build()
            .expect("vpc");
        Service::builder()
            .task_definition(task_definition)
            .desired_count(count)
            .network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
            .deployment_configuration(super::deployment())
            .build()
    }

    fn spec(task_definition: Option<&str>, count: Option<i32>) -> ServiceSpec {
        ServiceSpec {
            task_definition: task_definition.map(str::to_owned),
            desired_count: count,
            subnets: vec!["subnet-b".into(), "subnet-a".into()],
            security_group: Some("sg-1".into()),
        }
    }

    #[test]
    fn the_service_follows_the_revision_and_network_but_keeps_a_count_scale_set() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let service = RelayService(&names);
        let running = live(OLD, 3, &["subnet-a", "subnet-b"], "sg-1");
        assert_eq!(service.diff(&spec(Some(OLD), None), &running), Action::NoOp, "subnet order and a scaled count are no change");
        assert_eq!(service.diff(&spec(Some(NEW), None), &running), Action::Update(vec!["task definition → ivs-relay:8".into()]));
        assert_eq!(service.diff(&spec(Some(OLD), Some(2)), &running), Action::Update(vec!["desired count 3 → 2".into()]));
        // A dry run that registers a new revision plans to roll it out.
        assert_eq!(service.diff(&spec(None, None), &running), Action::Update(vec!["task definition → the new revision".into()]));
        let moved = live(OLD, 3, &["subnet-c"], "sg-2");
        assert_eq!(service.diff(&spec(Some(OLD), None), &moved), Action::Update(vec!["subnets".into(), "security group".into()]));
    }

    #[test]
    fn only_the_primary_deployment_completed_on_the_new_revision_is_success() {
        assert_eq!(rollout(&service(vec![deployment("PRIMARY", "COMPLETED", NEW, 2)]), NEW), Rollout::Done);
        let rolling = service(vec![deployment("PRIMARY", "IN_PROGRESS", NEW, 1), deployment("ACTIVE", "COMPLETED", OLD, 2)]);
        assert_eq!(rollout(&rolling, NEW), Rollout::InProgress);
        // Completed but still starting its tasks (ECS reports both for a moment).
        assert_eq!(rollout(&service(vec![deployment("PRIMARY", "COMPLETED", NEW, 1)]), NEW), Rollout::InProgress);
    }

    #[test]
    fn a_rollback_is_a_failure_even_when_the_service_is_steady_again() {
        let breaker = service(vec![deployment("PRIMARY", "IN_PROGRESS", OLD, 1), deployment("ACTIVE", "FAILED", NEW, 0)]);
        assert_eq!(rollout(&breaker, NEW), Rollout::Failed("ECS deployment FAILED".into()));
        let rolled_back = service(vec![deployment("PRIMARY", "COMPLETED", OLD, 2)]);
        let Rollout::Failed(reason) = rollout(&rolled_back, NEW) else { panic!("failed") };
        assert!(reason.contains("runs ivs-relay:7 instead of ivs-relay:8"), "{reason}");
    }
}
