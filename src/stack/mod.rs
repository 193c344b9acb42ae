//! The AWS stack one `ivsctl` deployment owns. Each submodule is one kind of resource,
//! implementing [`resource::Resource`]: read its live state, diff it against what the stack wants,
//! apply the difference, delete it, describe it. [`inventory`] is the stack in dependency order:
//! `deploy` creates in that order, `teardown` deletes in reverse, `status` shows it.
//!
//! Everything ivsctl creates carries the tag `ivsctl:stack=<name>`; a resource with one of the
//! stack's names but without that tag is never adopted, changed or deleted.

pub mod autoscaling;
pub mod channel;
pub mod cluster;
pub mod function;
pub mod function_url;
pub mod iam;
pub mod image;
pub mod linked_role;
pub mod log_group;
pub mod network;
pub mod parameter;
pub mod repository;
pub mod resource;
pub mod rule;
pub mod service;
pub mod table;
pub mod task_definition;
pub mod template;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use self::parameter::{Kind, Parameter};
use self::resource::Listed;
use crate::error::AwsError;

pub const TAG_KEY: &str = "ivsctl:stack";

/// A stack name: it prefixes every resource name, so it must fit all of AWS's naming rules
/// (ECR wants lower case; IAM role names 64 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackName(String);

impl FromStr for StackName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=24).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.ends_with('-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err("a stack name is 1-24 characters of a-z, 0-9 and '-', starting with a letter".into())
        }
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of every resource of a stack, derived from the stack name alone.
#[derive(Debug, Clone)]
pub struct Names {
    pub stack: StackName,
    pub cluster: String,
    pub service: String,
    pub task_family: String,
    pub execution_role: String,
    pub task_role: String,
    pub lambda_role: String,
    pub security_group: String,
    pub relay_log_group: String,
    pub lambda_log_group: String,
    pub table: String,
    pub repository: String,
    pub function: String,
    pub rule: String,
    pub front_door: String,
    pub front_door_role: String,
    pub front_door_log_group: String,
}

impl Names {
    pub fn new(stack: &StackName) -> Self {
        let s = &stack.0;
        Self {
            stack: stack.clone(),
            cluster: s.clone(),
            service: format!("{s}-relay"),
            task_family: format!("{s}-relay"),
            execution_role: format!("{s}-relay-execution"),
            task_role: format!("{s}-relay-task"),
            lambda_role: format!("{s}-ip-register"),
            security_group: format!("{s}-relay"),
            relay_log_group: format!("/ivsctl/{s}/relay"),
            lambda_log_group: format!("/aws/lambda/{s}-ip-register"),
            table: format!("{s}-relays"),
            repository: format!("{s}-relay"),
            function: format!("{s}-ip-register"),
            rule: format!("{s}-ecs-task-state"),
            front_door: format!("{s}-front-door"),
            front_door_role: format!("{s}-front-door"),
            front_door_log_group: format!("/aws/lambda/{s}-front-door"),
        }
    }

    pub fn tag_value(&self) -> &str {
        &self.stack.0
    }
}

/// Whether a deploy writes or only reports what it would write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    DryRun,
    Apply,
}

/// What a step did (or, in a dry run, would do) to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", content = "reasons", rename_all = "snake_case")]
pub enum Change {
    Create,
    /// With what differed.
    Update(Vec<String>),
    /// Deleted and created again, for this reason.
    Replace(String),
    /// A difference AWS refuses to change for now, and why.
    Defer(String),
    NoOp,
    Delete,
    /// Teardown found nothing to delete.
    Absent,
    /// Teardown left it alone, for the reason given (e.g. it is not this stack's).
    Skip(String),
}

impl Change {
    pub fn verb(&self, mode: Mode) -> &'static str {
        match (self, mode) {
            (Self::Create, Mode::Apply) => "created",
            (Self::Create, Mode::DryRun) => "create",
            (Self::Update(_), Mode::Apply) => "updated",
            (Self::Update(_), Mode::DryRun) => "update",
            (Self::Replace(_), Mode::Apply) => "replaced",
            (Self::Replace(_), Mode::DryRun) => "replace",
            (Self::Defer(_), Mode::Apply) => "deferred",
            (Self::Defer(_), Mode::DryRun) => "defer",
            (Self::Delete, Mode::Apply) => "deleted",
            (Self::Delete, Mode::DryRun) => "delete",
            (Self::NoOp, _) => "unchanged",
            (Self::Absent, _) => "absent",
            (Self::Skip(_), _) => "skipped",
        }
    }

    /// Whether the step writes (or, in a dry run, would write) anything.
    pub fn writes(&self) -> bool {
        !matches!(self, Self::NoOp | Self::Defer(_) | Self::Absent | Self::Skip(_))
    }
}

/// A resource as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Observed {
    Missing,
    /// It has the stack's name but not its tag.
    NotOurs,
    Present {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// One line on its state, e.g. `ACTIVE` or `retention 30 days`.
        detail: String,
    },
}

impl Observed {
    pub fn present(id: Option<String>, detail: impl Into<String>) -> Self {
        Self::Present { id, detail: detail.into() }
    }
}

/// The error for a resource that has one of the stack's names but not its tag.
pub fn not_ours(resource: &str, stack: &StackName) -> AwsError {
    AwsError::new(resource, "ownership check", "NotTagged", format!("it exists but is not tagged {TAG_KEY}={stack}"))
}

/// Teardown's answer for a resource with one of the stack's names but not its tag.
pub fn left_alone() -> Change {
    Change::Skip(format!("not tagged {TAG_KEY}, so not this stack's"))
}

/// Whether `tags` (key, value pairs) mark a resource as this stack's.
pub fn tagged<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>, names: &Names) -> bool {
    tags.any(|(k, v)| k == TAG_KEY && v == names.tag_value())
}

/// Every resource of the stack, in the order deploy creates them (dependencies first). The IVS
/// channel and its parameters are there when the stack records a channel (`channel`), the extra
/// destinations' parameters when they exist (`extra_destinations`, their numbers).
pub fn inventory<'a>(names: &'a Names, channel: Option<&'a str>, extra_destinations: &[u8]) -> Vec<Box<dyn Listed + 'a>> {
    let mut list: Vec<Box<dyn Listed + 'a>> = vec![
        Box::new(repository::EcrRepository(names)),
        Box::new(log_group::LogGroup { names, name: &names.relay_log_group }),
        Box::new(log_group::LogGroup { names, name: &names.lambda_log_group }),
        Box::new(log_group::LogGroup { names, name: &names.front_door_log_group }),
        Box::new(table::Table(names)),
        Box::new(Parameter { names, kind: Kind::Token }),
        Box::new(Parameter { names, kind: Kind::RelayCert }),
        Box::new(Parameter { names, kind: Kind::RelayKey }),
    ];
    if channel.is_some() {
        list.push(Box::new(channel::IvsChannel { names, arn: channel }));
        list.push(Box::new(Parameter { names, kind: Kind::Channel }));
        list.push(Box::new(Parameter { names, kind: Kind::Destination }));
    }
    list.extend(extra_destinations.iter().map(|&n| Box::new(Parameter { names, kind: Kind::ExtraDestination(n) }) as Box<dyn Listed>));
    list.extend([
        Box::new(iam::Role { names, name: &names.execution_role }) as Box<dyn Listed>,
        Box::new(iam::Role { names, name: &names.task_role }),
        Box::new(iam::Role { names, name: &names.lambda_role }),
        Box::new(iam::Role { names, name: &names.front_door_role }),
        Box::new(network::SecurityGroup { names, vpc: None }),
        Box::new(cluster::Cluster(names)),
        Box::new(task_definition::TaskFamily(names)),
        Box::new(function::Function::registry(names)),
        Box::new(rule::Rule(names)),
        Box::new(function::Permission(names)),
        Box::new(function::Function::front_door(names)),
        Box::new(function_url::FunctionUrl(names)),
        Box::new(function_url::PublicInvoke { names, action: function_url::InvokeAction::Url }),
        Box::new(function_url::PublicInvoke { names, action: function_url::InvokeAction::Function }),
        Box::new(service::RelayService(names)),
        Box::new(autoscaling::ScalableTarget(names)),
        Box::new(autoscaling::CpuPolicy(names)),
    ]);
    list
}
