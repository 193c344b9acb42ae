//! The one shape every kind of stack resource has: *read* its live state, *diff* it against what
//! the stack wants (a pure function, unit-tested with plain values), *apply* the difference,
//! *delete* it, *describe* it for `status`. The drivers here are the only places that decide
//! between writing and only planning, and between deleting and sparing what is not the stack's.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use super::{Change, Mode, Names, Observed, not_ours};
use crate::aws::Aws;
use crate::error::AwsError;

/// What a deploy does to one resource, as [`Resource::diff`] decides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "reasons", rename_all = "snake_case")]
pub enum Action {
    Create,
    /// Change it in place; what differs, by name (never by value: values may be secrets).
    Update(Vec<String>),
    /// It cannot be changed in place: delete it and create it again, for this reason.
    Replace(String),
    /// It differs, but AWS refuses the change for now; a later deploy makes it, for this reason.
    Defer(String),
    NoOp,
}

impl Action {
    /// `Update` when anything differs, else `NoOp`.
    pub fn update_if(differences: Vec<String>) -> Self {
        if differences.is_empty() { Self::NoOp } else { Self::Update(differences) }
    }
}

impl From<Action> for Change {
    fn from(action: Action) -> Self {
        match action {
            Action::Create => Self::Create,
            Action::Update(reasons) => Self::Update(reasons),
            Action::Replace(reason) => Self::Replace(reason),
            Action::Defer(reason) => Self::Defer(reason),
            Action::NoOp => Self::NoOp,
        }
    }
}

/// One kind of resource of the stack; a value of it names one resource (e.g. one log group).
#[allow(async_fn_in_trait)] // Driven on one task (the CLI's), never sent across threads.
pub trait Resource {
    /// The resource as AWS describes it.
    type Live;
    /// The resource as the stack wants it.
    type Desired;
    /// What later resources need from it (an ARN, an id).
    type Output;

    /// e.g. `ECS service ivs-relay`: how every line, plan entry and error names it.
    fn label(&self) -> String;

    /// `None` when nothing has the resource's name.
    async fn read(&self, aws: &Aws) -> Result<Option<Self::Live>, AwsError>;

    /// Whether it carries the stack's tag (only then is it changed or deleted).
    fn is_ours(&self, live: &Self::Live) -> bool;

    /// What it takes to make `live` what the stack wants. Pure: no AWS, no clock.
    fn diff(&self, desired: &Self::Desired, live: &Self::Live) -> Action;

    /// The output without writing: for an unchanged resource, or one a dry run would create.
    fn output(&self, aws: &Aws, desired: &Self::Desired, live: Option<&Self::Live>) -> Self::Output;

    async fn create(&self, aws: &Aws, desired: &Self::Desired) -> Result<Self::Output, AwsError>;

    /// Brings `live` to `desired` in place (only called when [`Resource::diff`] said `Update`).
    async fn update(&self, aws: &Aws, desired: &Self::Desired, live: &Self::Live) -> Result<Self::Output, AwsError>;

    async fn delete(&self, aws: &Aws, live: Self::Live) -> Result<(), AwsError>;

    /// One line on its state for `status`.
    fn describe(&self, live: &Self::Live) -> Observed;
}

/// Deploy's step for one resource: read, diff, and (unless this is a dry run) apply.
pub async fn converge<R: Resource>(
    aws: &Aws,
    names: &Names,
    mode: Mode,
    resource: &R,
    desired: &R::Desired,
) -> Result<(Change, R::Output), AwsError> {
    let live = resource.read(aws).await?;
    let action = match &live {
        None => Action::Create,
        Some(live) if !resource.is_ours(live) => return Err(not_ours(&resource.label(), &names.stack)),
        Some(live) => resource.diff(desired, live),
    };
    let output = match (mode, &action, live) {
        (Mode::DryRun, _, live) | (Mode::Apply, Action::NoOp | Action::Defer(_), live) => resource.output(aws, desired, live.as_ref()),
        (Mode::Apply, Action::Create, _) | (Mode::Apply, Action::Replace(_) | Action::Update(_), None) => {
            resource.create(aws, desired).await?
        }
        (Mode::Apply, Action::Replace(_), Some(live)) => {
            resource.delete(aws, live).await?;
            resource.create(aws, desired).await?
        }
        (Mode::Apply, Action::Update(_), Some(live)) => resource.update(aws, desired, &live).await?,
    };
    Ok((action.into(), output))
}

/// Teardown's step for one resource: delete it (unless this is a dry run) if it is the stack's.
pub async fn remove<R: Resource>(aws: &Aws, mode: Mode, resource: &R) -> Result<Change, AwsError> {
    Ok(match resource.read(aws).await? {
        None => Change::Absent,
        Some(live) if !resource.is_ours(&live) => super::left_alone(),
        Some(live) => {
            if mode == Mode::Apply {
                resource.delete(aws, live).await?;
            }
            Change::Delete
        }
    })
}

/// Status's view of one resource.
pub async fn observe<R: Resource>(aws: &Aws, resource: &R) -> Result<Observed, AwsError> {
    Ok(match resource.read(aws).await? {
        None => Observed::Missing,
        Some(live) if !resource.is_ours(&live) => Observed::NotOurs,
        Some(live) => resource.describe(&live),
    })
}

type Local<'a, T> = Pin<Box<dyn Future<Output = Result<T, AwsError>> + 'a>>;

/// A resource of any kind, as the stack's one ordered list ([`super::inventory`]) holds it.
pub trait Listed {
    fn label(&self) -> String;
    fn remove<'a>(&'a self, aws: &'a Aws, mode: Mode) -> Local<'a, Change>;
    fn observe<'a>(&'a self, aws: &'a Aws) -> Local<'a, Observed>;
}

impl<R: Resource> Listed for R {
    fn label(&self) -> String {
        Resource::label(self)
    }

    fn remove<'a>(&'a self, aws: &'a Aws, mode: Mode) -> Local<'a, Change> {
        Box::pin(remove(aws, mode, self))
    }

    fn observe<'a>(&'a self, aws: &'a Aws) -> Local<'a, Observed> {
        Box::pin(observe(aws, self))
    }
}
