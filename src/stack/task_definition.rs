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

use super::resource::{Action, Resource};
use super::template::{self, TASK_DEFINITION};
use super::{Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;

/// A task size Fargate runs: CPU units and memory (MiB) in one of its combinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FargateSize {
    cpu: u32,
    memory: u32,
}

impl FargateSize {
    /// Fargate's (Linux) table: for each CPU size, the memory range and its step.
    const TABLE: [(u32, u32, u32, u32); 7] = [
        (256, 512, 2048, 512),
        (512, 1024, 4096, 1024),
        (1024, 2048, 8192, 1024),
        (2048, 4096, 16384, 1024),
        (4096, 8192, 30720, 1024),
        (8192, 16384, 61440, 4096),
        (16384, 32768, 122_880, 8192),
    ];

    pub fn new(cpu: u32, memory: u32) -> Result<Self, String> {
        let Some(&(_, low, high, step)) = Self::TABLE.iter().find(|(c, ..)| *c == cpu) else {
            let sizes: Vec<String> = Self::TABLE.iter().map(|(c, ..)| c.to_string()).collect();
            return Err(format!("Fargate tasks take {} CPU units, not {cpu}", sizes.join(", ")));
        };
        // 256 CPU units also take 512 MiB steps from 512: 512, 1024, 2048 (not 1536).
        let fits =
            if cpu == 256 { [512, 1024, 2048].contains(&memory) } else { (low..=high).contains(&memory) && memory.is_multiple_of(step) };
        if fits {
            Ok(Self { cpu, memory })
        } else {
            let allowed = if cpu == 256 { "512, 1024 or 2048".to_owned() } else { format!("{low} to {high} in steps of {step}") };
            Err(format!("Fargate runs {cpu} CPU units with {allowed} MiB of memory, not {memory}"))
        }
    }

    pub fn cpu(self) -> u32 {
        self.cpu
    }

    pub fn memory(self) -> u32 {
        self.memory
    }
}

/// What varies between stacks; the rest is in the template.
pub struct TaskSpec<'a> {
    pub image: &'a str,
    pub size: FargateSize,
    pub udp_port: u16,
    /// STUN servers (host:port), tried in turn.
    pub stun: &'a [String],
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
                ("cpu", json!(spec.size.cpu().to_string())),
                ("memory", json!(spec.size.memory().to_string())),
                ("execution_role_arn", json!(spec.execution_role_arn)),
                ("task_role_arn", json!(spec.task_role_arn)),
                ("image", json!(spec.image)),
                ("udp_port", json!(spec.udp_port)),
                ("udp_port_text", json!(spec.udp_port.to_string())),
                ("stun", json!(spec.stun.join(","))),
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
            |e: aws_sdk_ecs::error::BuildError| AwsError::new(resource, op!("ecs:RegisterTaskDefinition"), "InvalidRequest", e.to_string());
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

/// The stack's task definition family.
pub struct TaskFamily<'a>(pub &'a Names);

pub struct Live {
    arn: String,
    tagged: bool,
    document: Document,
}

/// The task definition the stack wants.
pub struct Desired(Document);

impl Desired {
    pub fn new(aws: &Aws, names: &Names, spec: &TaskSpec) -> Self {
        Self(Document::desired(aws, names, spec))
    }
}

/// The UDP media port of the latest revision: the one running tasks listen on until a new
/// revision rolls out.
pub async fn live_udp_port(aws: &Aws, names: &Names) -> Result<Option<u16>, AwsError> {
    let Some(live) = TaskFamily(names).read(aws).await? else { return Ok(None) };
    let ports = live.document.container_definitions.iter().flat_map(|c| &c.port_mappings);
    Ok(ports.filter(|p| p.protocol == "udp").find_map(|p| u16::try_from(p.container_port).ok()))
}

fn to_value(document: &Document) -> Value {
    serde_json::to_value(document).unwrap_or(Value::Null)
}

impl Resource for TaskFamily<'_> {
    type Live = Live;
    type Desired = Desired;
    /// The ARN of the revision the service should run; `None` only in a dry run that would
    /// register a new one.
    type Output = Option<String>;

    fn label(&self) -> String {
        format!("task definition {}", self.0.task_family)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let found = aws
            .ecs
            .describe_task_definition()
            .task_definition(&self.0.task_family)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .or_missing(&["ClientException"], &self.label(), op!("ecs:DescribeTaskDefinition"))?;
        let Some(found) = found else { return Ok(None) };
        let Some(td) = found.task_definition().filter(|td| td.status() == Some(&TaskDefinitionStatus::Active)) else { return Ok(None) };
        Ok(Some(Live {
            arn: td.task_definition_arn().unwrap_or_default().to_owned(),
            tagged: super::tagged(found.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))), self.0),
            document: Document::from_live(td),
        }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    /// Revisions are immutable: any difference is a new revision (an `Update` of the family).
    fn diff(&self, desired: &Desired, live: &Live) -> Action {
        Action::update_if(template::differences(&to_value(&desired.0), &to_value(&live.document)))
    }

    fn output(&self, _: &Aws, desired: &Desired, live: Option<&Live>) -> Option<String> {
        live.filter(|l| self.diff(desired, l) == Action::NoOp).map(|l| l.arn.clone())
    }

    async fn create(&self, aws: &Aws, desired: &Desired) -> Result<Option<String>, AwsError> {
        let resource = self.label();
        let desired = &desired.0;
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
            .tags(Tag::builder().key(TAG_KEY).value(self.0.tag_value()).build())
            .send()
            .await
            .on(&resource, op!("ecs:RegisterTaskDefinition"))?;
        Ok(registered.task_definition().and_then(|td| td.task_definition_arn()).map(str::to_owned))
    }

    async fn update(&self, aws: &Aws, desired: &Desired, _: &Live) -> Result<Option<String>, AwsError> {
        self.create(aws, desired).await
    }

    /// Deregisters every active revision of the family.
    async fn delete(&self, aws: &Aws, _: Live) -> Result<(), AwsError> {
        let resource = self.label();
        let family = &self.0.task_family;
        let revisions = aws
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(TaskDefinitionStatus::Active)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .on(&resource, op!("ecs:ListTaskDefinitions"))?;
        // The prefix also matches other families starting with ours.
        let ours =
            revisions.iter().filter(|arn| arn.rsplit_once('/').and_then(|(_, r)| r.rsplit_once(':')).is_some_and(|(f, _)| f == family));
        for arn in ours {
            aws.ecs.deregister_task_definition().task_definition(arn).send().await.or_missing(
                &["ClientException"],
                &resource,
                op!("ecs:DeregisterTaskDefinition"),
            )?;
        }
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        let image = live.document.container_definitions.first().map(|c| c.image.clone()).unwrap_or_default();
        Observed::present(Some(live.arn.clone()), format!("{} CPU units, {} MiB, image {image}", live.document.cpu, live.document.memory))
    }
}

#[cfg(test)]
mod tests {
    use super::FargateSize;

    #[test]
    fn only_fargate_cpu_and_memory_pairs_are_accepted() {
        for (cpu, memory) in [(256, 512), (256, 2048), (512, 4096), (1024, 3072), (4096, 30720), (16384, 122_880)] {
            assert!(FargateSize::new(cpu, memory).is_ok(), "{cpu}/{memory}");
        }
        for (cpu, memory) in [(256, 1536), (256, 4096), (512, 512), (1024, 2500), (4096, 32768), (300, 512)] {
            assert!(FargateSize::new(cpu, memory).is_err(), "{cpu}/{memory}");
        }
        let error = FargateSize::new(1024, 512).expect_err("too little memory");
        assert!(error.contains("2048 to 8192 in steps of 1024"), "{error}");
    }
}
