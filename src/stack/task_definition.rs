//! The relay's Fargate task definition, from `templates/task-definition.json`. Task definitions
//! are immutable: any difference from the template registers a new revision, which the service
//! then rolls out.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, CpuArchitecture, HealthCheck, KeyValuePair, LogConfiguration, LogDriver, NetworkMode, OsFamily,
    PortMapping, RuntimePlatform, Secret, Tag, TaskDefinition, TaskDefinitionField, TaskDefinitionStatus, TransportProtocol,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::template::{self, TASK_DEFINITION};
use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

/// What varies between stacks; the rest is in the template.
pub struct TaskSpec<'a> {
    pub image: &'a str,
    pub cpu: u32,
    pub memory: u32,
    pub udp_port: u16,
    pub stun: &'a str,
    pub execution_role_arn: &'a str,
    pub task_role_arn: &'a str,
    /// Environment besides the template's, e.g. the IVS playback URL.
    pub environment: Vec<(&'static str, String)>,
    /// Variable name → ARN of the SSM parameter ECS reads it from at start.
    pub secrets: Vec<(&'static str, String)>,
}

/// The part of a task definition ivsctl sets, in ECS's JSON shape (as `aws ecs
/// register-task-definition --cli-input-json` takes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    family: String,
    network_mode: String,
    requires_compatibilities: Vec<String>,
    cpu: String,
    memory: String,
    runtime_platform: Platform,
    execution_role_arn: String,
    task_role_arn: String,
    container_definitions: Vec<Container>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Platform {
    cpu_architecture: String,
    operating_system_family: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    name: String,
    image: String,
    essential: bool,
    port_mappings: Vec<Port>,
    environment: Vec<NameValue>,
    secrets: Vec<SecretRef>,
    log_configuration: Logs,
    health_check: Health,
    stop_timeout: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Port {
    container_port: i32,
    protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretRef {
    name: String,
    value_from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Logs {
    log_driver: String,
    options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    command: Vec<String>,
    interval: i32,
    timeout: i32,
    retries: i32,
    start_period: i32,
}

impl Document {
    fn desired(aws: &Aws, names: &Names, spec: &TaskSpec) -> Self {
        let rendered = template::render(
            TASK_DEFINITION,
            &[
                ("family", json!(names.task_family)),
                ("cpu", json!(spec.cpu.to_string())),
                ("memory", json!(spec.memory.to_string())),
                ("execution_role_arn", json!(spec.execution_role_arn)),
                ("task_role_arn", json!(spec.task_role_arn)),
                ("image", json!(spec.image)),
                ("udp_port", json!(spec.udp_port)),
                ("udp_port_text", json!(spec.udp_port.to_string())),
                ("stun", json!(spec.stun)),
                ("log_group", json!(names.relay_log_group)),
                ("region", json!(aws.region)),
            ],
        );
        let mut document = serde_json::from_value::<Document>(rendered).expect("templates/task-definition.json has the Document shape");
        if let Some(relay) = document.container_definitions.first_mut() {
            relay
                .environment
                .extend(spec.environment.iter().map(|(name, value)| NameValue { name: (*name).to_owned(), value: value.clone() }));
            relay.secrets.extend(spec.secrets.iter().map(|(name, arn)| SecretRef { name: (*name).to_owned(), value_from: arn.clone() }));
        }
        document.normalized()
    }

    /// ECS may return lists in another order than they were registered in.
    fn normalized(mut self) -> Self {
        for container in &mut self.container_definitions {
            container.environment.sort();
            container.secrets.sort();
        }
        self
    }

    fn from_live(td: &TaskDefinition) -> Self {
        let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
        Document {
            family: text(td.family()),
            network_mode: text(td.network_mode().map(NetworkMode::as_str)),
            requires_compatibilities: td.requires_compatibilities().iter().map(|c| c.as_str().to_owned()).collect(),
            cpu: text(td.cpu()),
            memory: text(td.memory()),
            runtime_platform: Platform {
                cpu_architecture: text(td.runtime_platform().and_then(|p| p.cpu_architecture()).map(CpuArchitecture::as_str)),
                operating_system_family: text(td.runtime_platform().and_then(|p| p.operating_system_family()).map(OsFamily::as_str)),
            },
            execution_role_arn: text(td.execution_role_arn()),
            task_role_arn: text(td.task_role_arn()),
            container_definitions: td
                .container_definitions()
                .iter()
                .map(|c| Container {
                    name: text(c.name()),
                    image: text(c.image()),
                    essential: c.essential().unwrap_or(true),
                    port_mappings: c
                        .port_mappings()
                        .iter()
                        .map(|p| Port {
                            container_port: p.container_port().unwrap_or_default(),
                            protocol: text(p.protocol().map(TransportProtocol::as_str)),
                        })
                        .collect(),
                    environment: c.environment().iter().map(|e| NameValue { name: text(e.name()), value: text(e.value()) }).collect(),
                    secrets: c
                        .secrets()
                        .iter()
                        .map(|s| SecretRef { name: s.name().to_owned(), value_from: s.value_from().to_owned() })
                        .collect(),
                    log_configuration: Logs {
                        log_driver: text(c.log_configuration().map(|l| l.log_driver().as_str())),
                        options: c
                            .log_configuration()
                            .and_then(|l| l.options())
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    },
                    health_check: Health {
                        command: c.health_check().map(|h| h.command().to_vec()).unwrap_or_default(),
                        interval: c.health_check().and_then(|h| h.interval()).unwrap_or_default(),
                        timeout: c.health_check().and_then(|h| h.timeout()).unwrap_or_default(),
                        retries: c.health_check().and_then(|h| h.retries()).unwrap_or_default(),
                        start_period: c.health_check().and_then(|h| h.start_period()).unwrap_or_default(),
                    },
                    stop_timeout: c.stop_timeout().unwrap_or_default(),
                })
                .collect(),
        }
        .normalized()
    }

    fn container(c: &Container, resource: &str) -> Result<ContainerDefinition, AwsError> {
        let invalid =
            |e: aws_sdk_ecs::error::BuildError| AwsError::new(resource, "ecs:RegisterTaskDefinition", "InvalidRequest", e.to_string());
        let secrets =
            c.secrets.iter().map(|s| Secret::builder().name(&s.name).value_from(&s.value_from).build()).collect::<Result<Vec<_>, _>>();
        Ok(ContainerDefinition::builder()
            .name(&c.name)
            .image(&c.image)
            .essential(c.essential)
            .set_port_mappings(Some(
                c.port_mappings
                    .iter()
                    .map(|p| {
                        PortMapping::builder()
                            .container_port(p.container_port)
                            .protocol(TransportProtocol::from(p.protocol.as_str()))
                            .build()
                    })
                    .collect(),
            ))
            .set_environment(Some(c.environment.iter().map(|e| KeyValuePair::builder().name(&e.name).value(&e.value).build()).collect()))
            .set_secrets(Some(secrets.map_err(invalid)?))
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::from(c.log_configuration.log_driver.as_str()))
                    .set_options(Some(c.log_configuration.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()))
                    .build()
                    .map_err(invalid)?,
            )
            .health_check(
                HealthCheck::builder()
                    .set_command(Some(c.health_check.command.clone()))
                    .interval(c.health_check.interval)
                    .timeout(c.health_check.timeout)
                    .retries(c.health_check.retries)
                    .start_period(c.health_check.start_period)
                    .build()
                    .map_err(invalid)?,
            )
            .stop_timeout(c.stop_timeout)
            .build())
    }
}

fn label(names: &Names) -> String {
    format!("task definition {}", names.task_family)
}

struct LiveRevision {
    arn: String,
    tagged: bool,
    document: Document,
}

async fn read(aws: &Aws, names: &Names) -> Result<Option<LiveRevision>, AwsError> {
    let found =
        aws.ecs.describe_task_definition().task_definition(&names.task_family).include(TaskDefinitionField::Tags).send().await.or_missing(
            &["ClientException"],
            &label(names),
            "ecs:DescribeTaskDefinition",
        )?;
    let Some(found) = found else { return Ok(None) };
    let Some(td) = found.task_definition().filter(|td| td.status() == Some(&TaskDefinitionStatus::Active)) else { return Ok(None) };
    Ok(Some(LiveRevision {
        arn: td.task_definition_arn().unwrap_or_default().to_owned(),
        tagged: super::tagged(found.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))), names),
        document: Document::from_live(td),
    }))
}

/// The UDP media port of the latest revision: the one running tasks listen on until a new
/// revision rolls out.
pub async fn live_udp_port(aws: &Aws, names: &Names) -> Result<Option<u16>, AwsError> {
    let Some(live) = read(aws, names).await? else { return Ok(None) };
    let ports = live.document.container_definitions.iter().flat_map(|c| &c.port_mappings);
    Ok(ports.filter(|p| p.protocol == "udp").find_map(|p| u16::try_from(p.container_port).ok()))
}

/// Registers a new revision when the latest one differs from the template; returns the ARN of
/// the revision the service should run.
pub async fn ensure(aws: &Aws, names: &Names, spec: &TaskSpec<'_>, mode: Mode) -> Result<(Change, String), AwsError> {
    let resource = label(names);
    let desired = Document::desired(aws, names, spec);
    let change = match read(aws, names).await? {
        None => Change::Created,
        Some(live) if !live.tagged => return Err(not_ours(&resource, &names.stack)),
        Some(live) => {
            let differences = template::differences(&to_value(&desired), &to_value(&live.document));
            if differences.is_empty() {
                return Ok((Change::Unchanged, live.arn));
            }
            Change::Updated(differences)
        }
    };
    if mode == Mode::DryRun {
        return Ok((change, format!("{}:(next revision)", names.task_family)));
    }
    let containers = desired.container_definitions.iter().map(|c| Document::container(c, &resource)).collect::<Result<Vec<_>, _>>()?;
    let registered = aws
        .ecs
        .register_task_definition()
        .family(&desired.family)
        .network_mode(NetworkMode::from(desired.network_mode.as_str()))
        .set_requires_compatibilities(Some(desired.requires_compatibilities.iter().map(|c| Compatibility::from(c.as_str())).collect()))
        .cpu(&desired.cpu)
        .memory(&desired.memory)
        .runtime_platform(
            RuntimePlatform::builder()
                .cpu_architecture(CpuArchitecture::from(desired.runtime_platform.cpu_architecture.as_str()))
                .operating_system_family(OsFamily::from(desired.runtime_platform.operating_system_family.as_str()))
                .build(),
        )
        .execution_role_arn(&desired.execution_role_arn)
        .task_role_arn(&desired.task_role_arn)
        .set_container_definitions(Some(containers))
        .tags(Tag::builder().key(TAG_KEY).value(names.tag_value()).build())
        .send()
        .await
        .on(&resource, "ecs:RegisterTaskDefinition")?;
    let arn = registered.task_definition().and_then(|td| td.task_definition_arn()).unwrap_or_default().to_owned();
    Ok((change, arn))
}

fn to_value(document: &Document) -> Value {
    serde_json::to_value(document).unwrap_or(Value::Null)
}

/// Deregisters every active revision of the family, if the latest is this stack's.
pub async fn remove(aws: &Aws, names: &Names, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    Found::of(read(aws, names).await?, |live| live.tagged)
        .remove(mode, async |_| {
            let revisions = aws
                .ecs
                .list_task_definitions()
                .family_prefix(&names.task_family)
                .status(TaskDefinitionStatus::Active)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .on(&resource, "ecs:ListTaskDefinitions")?;
            // The prefix also matches other families starting with ours.
            let ours = revisions
                .iter()
                .filter(|arn| arn.rsplit_once('/').and_then(|(_, r)| r.rsplit_once(':')).is_some_and(|(f, _)| f == names.task_family));
            for arn in ours {
                aws.ecs.deregister_task_definition().task_definition(arn).send().await.or_missing(
                    &["ClientException"],
                    &resource,
                    "ecs:DeregisterTaskDefinition",
                )?;
            }
            Ok(())
        })
        .await
}

pub async fn observe(aws: &Aws, names: &Names) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names).await?, |live| live.tagged).observe(|live| {
        let image = live.document.container_definitions.first().map(|c| c.image.clone()).unwrap_or_default();
        Observed::present(Some(live.arn), format!("{} CPU units, {} MiB, image {image}", live.document.cpu, live.document.memory))
    }))
}
