//! The relay's Fargate service: public IPs, the relay security group, a deployment circuit
//! breaker that rolls back a revision whose tasks don't come up.

use std::time::Duration;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentRolloutState, DesiredStatus,
    LaunchType, NetworkConfiguration, PropagateTags, Service, ServiceField, Tag,
};
use indicatif::ProgressBar;
use serde::Serialize;

use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

/// The service as the stack wants it.
pub struct ServiceSpec<'a> {
    pub task_definition: &'a str,
    /// `None`: keep the live count (`scale` owns it); 1 for a new service.
    pub desired_count: Option<i32>,
    pub subnets: &'a [String],
    /// `None` only in a dry run that creates the group.
    pub security_group: Option<&'a str>,
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
            "ecs:DescribeServices",
        )?;
    // A deleted service is DRAINING, then INACTIVE; either way a new one may take its name.
    Ok(found.and_then(|f| f.services().iter().find(|s| s.status() == Some("ACTIVE")).cloned()))
}

fn is_ours(service: &Service, names: &Names) -> bool {
    super::tagged(service.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))), names)
}

fn network(spec: &ServiceSpec, resource: &str) -> Result<NetworkConfiguration, AwsError> {
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(spec.subnets.to_vec()))
        .set_security_groups(spec.security_group.map(|g| vec![g.to_owned()]))
        .assign_public_ip(AssignPublicIp::Enabled)
        .build()
        .map_err(|e| AwsError::new(resource, "ecs:CreateService", "InvalidRequest", e.to_string()))?;
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
    if live.task_definition() != Some(spec.task_definition) {
        found.push(format!("task definition → {}", spec.task_definition.rsplit('/').next().unwrap_or(spec.task_definition)));
    }
    if let Some(count) = spec.desired_count.filter(|&n| n != live.desired_count()) {
        found.push(format!("desired count {} → {count}", live.desired_count()));
    }
    let vpc = live.network_configuration().and_then(|n| n.awsvpc_configuration());
    let mut subnets = vpc.map(|v| v.subnets().to_vec()).unwrap_or_default();
    subnets.sort();
    let mut wanted_subnets = spec.subnets.to_vec();
    wanted_subnets.sort();
    if subnets != wanted_subnets {
        found.push("subnets".to_owned());
    }
    let groups: Vec<&str> = vpc.map(|v| v.security_groups().iter().map(String::as_str).collect()).unwrap_or_default();
    if groups != spec.security_group.into_iter().collect::<Vec<_>>() {
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

pub async fn ensure(aws: &Aws, names: &Names, spec: &ServiceSpec<'_>, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    match read(aws, names).await? {
        None => {
            if mode == Mode::Apply {
                aws.ecs
                    .create_service()
                    .cluster(&names.cluster)
                    .service_name(&names.service)
                    .task_definition(spec.task_definition)
                    .desired_count(spec.desired_count.unwrap_or(1))
                    .launch_type(LaunchType::Fargate)
                    .network_configuration(network(spec, &resource)?)
                    .deployment_configuration(deployment())
                    .propagate_tags(PropagateTags::Service)
                    .enable_ecs_managed_tags(true)
                    .tags(Tag::builder().key(TAG_KEY).value(names.tag_value()).build())
                    .send()
                    .await
                    .on(&resource, "ecs:CreateService")?;
            }
            Ok(Change::Created)
        }
        Some(live) if !is_ours(&live, names) => Err(not_ours(&resource, &names.stack)),
        Some(live) => {
            let found = differences(&live, spec);
            if !found.is_empty() && mode == Mode::Apply {
                aws.ecs
                    .update_service()
                    .cluster(&names.cluster)
                    .service(&names.service)
                    .task_definition(spec.task_definition)
                    .set_desired_count(spec.desired_count)
                    .network_configuration(network(spec, &resource)?)
                    .deployment_configuration(deployment())
                    .send()
                    .await
                    .on(&resource, "ecs:UpdateService")?;
            }
            Ok(Change::from_differences(found))
        }
    }
}

/// Sets the desired count of this stack's service.
pub async fn set_desired_count(aws: &Aws, names: &Names, count: i32) -> Result<(), AwsError> {
    let resource = label(names);
    match read(aws, names).await? {
        None => Err(AwsError::new(
            resource,
            "ecs:DescribeServices",
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
                .on(&resource, "ecs:UpdateService")?;
            Ok(())
        }
    }
}

/// Scales the service to zero and deletes it; its tasks drain in the background.
pub async fn remove(aws: &Aws, names: &Names, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    Found::of(read(aws, names).await?, |live| is_ours(live, names))
        .remove(mode, async |_| {
            aws.ecs.delete_service().cluster(&names.cluster).service(&names.service).force(true).send().await.or_missing(
                &["ServiceNotFoundException", "ClusterNotFoundException"],
                &resource,
                "ecs:DeleteService",
            )?;
            Ok(())
        })
        .await
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

pub async fn observe(aws: &Aws, names: &Names) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names).await?, |live| is_ours(live, names)).observe(|live| {
        Observed::present(
            live.service_arn().map(str::to_owned),
            format!("{}, {} of {} tasks running", live.status().unwrap_or_default(), live.running_count(), live.desired_count()),
        )
    }))
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
        .on(&resource, "ecs:ListTasks")?;
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
        .on(&resource, "ecs:DescribeTasks")?;
    Ok(tasks.tasks().iter().filter(|t| t.stopped_at().is_some()).max_by_key(|t| t.stopped_at().map(|at| at.secs())).and_then(|t| {
        let container = t.containers().iter().find_map(|c| c.reason()).map(|r| format!(" ({r})")).unwrap_or_default();
        t.stopped_reason().map(|r| format!("{r}{container}"))
    }))
}

/// Waits until `count` tasks run and one deployment remains, showing progress on `bar`.
/// Fails when the circuit breaker gives up on the deployment, or at the timeout.
pub async fn wait_until_running(
    aws: &Aws,
    names: &Names,
    count: i32,
    timeout: Duration,
    bar: &ProgressBar,
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
        if let Some(failed) = state.deployments.iter().find(|d| d.rollout == DeploymentRolloutState::Failed.as_str()) {
            let stop = latest_stop_reason(aws, names).await?.map(|r| format!("; last stopped task: {r}")).unwrap_or_default();
            return Err(AwsError::new(
                resource,
                "deployment",
                "CircuitBreakerTripped",
                format!(
                    "{}{stop}: see the relay log group {}",
                    failed.reason.as_deref().unwrap_or("the deployment failed"),
                    names.relay_log_group
                ),
            ));
        }
        if state.running == count && state.pending == 0 && state.deployments.len() <= 1 {
            return Ok(state);
        }
        if tokio::time::Instant::now() >= deadline {
            let stop = latest_stop_reason(aws, names).await?.map(|r| format!("; last stopped task: {r}")).unwrap_or_default();
            return Err(AwsError::new(
                resource,
                "wait",
                "Timeout",
                format!("{} of {count} tasks running after {} s{stop}; `ivsctl status` shows more", state.running, timeout.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
