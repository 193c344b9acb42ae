//! ECS's service-linked role (`AWSServiceRoleForECS`): one per account, which ECS needs before it
//! can create a cluster or a service. AWS makes it with an account's first cluster from the
//! console, but not always for API calls, so a fresh account fails with "Unable to assume the
//! service linked role". Deploy creates it when it is missing; it is the account's, not the
//! stack's, so teardown leaves it and an existing one is never changed.

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_sts::error::SdkError;

use super::Observed;
use super::resource::{Action, Resource};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;

pub const SERVICE: &str = "ecs.amazonaws.com";
/// Where IAM keeps the roles it links to ECS.
const PATH: &str = "/aws-service-role/ecs.amazonaws.com/";

/// Whether ECS refused a call only because the role is too new to be assumed yet.
pub fn not_ready<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("InvalidParameterException") && e.message().is_some_and(|m| m.to_ascii_lowercase().contains("service linked role"))
}

pub struct EcsLinkedRole;

/// The role's ARN.
pub struct Live(String);

impl Resource for EcsLinkedRole {
    type Live = Live;
    type Desired = ();
    type Output = ();

    fn label(&self) -> String {
        "ECS service-linked role".to_owned()
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let found = aws.iam.list_roles().path_prefix(PATH).send().await.on(&self.label(), op!("iam:ListRoles"))?;
        Ok(found.roles().first().map(|r| Live(r.arn().to_owned())))
    }

    /// An existing one is fine, whoever made it.
    fn is_ours(&self, _: &Live) -> bool {
        true
    }

    fn diff(&self, (): &(), _: &Live) -> Action {
        Action::NoOp
    }

    fn output(&self, _: &Aws, (): &(), _: Option<&Live>) {}

    async fn create(&self, aws: &Aws, (): &()) -> Result<(), AwsError> {
        match aws.iam.create_service_linked_role().aws_service_name(SERVICE).send().await {
            // Made meanwhile by someone else (another deploy, the console): just as good.
            Err(e) if e.code() == Some("InvalidInput") && e.message().is_some_and(|m| m.contains("has been taken")) => Ok(()),
            result => result.map(|_| ()).on(&self.label(), op!("iam:CreateServiceLinkedRole")),
        }
    }

    async fn update(&self, _: &Aws, (): &(), _: &Live) -> Result<(), AwsError> {
        Ok(())
    }

    /// Never called: the role is the account's (it is not in the stack's inventory).
    async fn delete(&self, _: &Aws, _: Live) -> Result<(), AwsError> {
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        Observed::present(Some(live.0.clone()), "the account's, kept by teardown")
    }
}
