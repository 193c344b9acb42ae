//! IAM roles: the relay task's execution role (pull the image, write logs, read its secrets),
//! the relay task role (the relay calls no AWS API, so it holds nothing), and the Lambda role.
//! Each role has its trust policy and at most one inline policy, named `ivsctl`.

use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY, tagged};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;

const POLICY_NAME: &str = "ivsctl";

/// One of the stack's roles.
pub struct Role<'a> {
    pub names: &'a Names,
    pub name: &'a str,
}

/// A role as the stack wants it.
pub struct RoleSpec {
    pub trust: Value,
    pub policy: Option<Value>,
}

pub struct Live {
    arn: String,
    tagged: bool,
    trust: Value,
    policy: Option<Value>,
}

/// IAM returns policy documents URL-encoded.
fn parse_document(text: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(Value::Null)
}

pub fn arn(aws: &Aws, name: &str) -> String {
    aws.arn("iam", &format!("role/{name}"))
}

impl Role<'_> {
    async fn put_policy(&self, aws: &Aws, policy: Option<&Value>) -> Result<(), AwsError> {
        let resource = self.label();
        match policy {
            Some(policy) => {
                aws.iam
                    .put_role_policy()
                    .role_name(self.name)
                    .policy_name(POLICY_NAME)
                    .policy_document(policy.to_string())
                    .send()
                    .await
                    .on(&resource, op!("iam:PutRolePolicy"))?;
            }
            None => {
                aws.iam.delete_role_policy().role_name(self.name).policy_name(POLICY_NAME).send().await.or_missing(
                    &["NoSuchEntity"],
                    &resource,
                    op!("iam:DeleteRolePolicy"),
                )?;
            }
        }
        Ok(())
    }
}

impl Resource for Role<'_> {
    type Live = Live;
    type Desired = RoleSpec;
    /// The role's ARN.
    type Output = String;

    fn label(&self) -> String {
        format!("IAM role {}", self.name)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let resource = self.label();
        let Some(output) =
            aws.iam.get_role().role_name(self.name).send().await.or_missing(&["NoSuchEntity"], &resource, op!("iam:GetRole"))?
        else {
            return Ok(None);
        };
        let Some(role) = output.role() else { return Ok(None) };
        let is_ours = tagged(role.tags().iter().map(|t| (t.key(), t.value())), self.names);
        let policy = if is_ours {
            aws.iam
                .get_role_policy()
                .role_name(self.name)
                .policy_name(POLICY_NAME)
                .send()
                .await
                .or_missing(&["NoSuchEntity"], &resource, op!("iam:GetRolePolicy"))?
                .map(|p| parse_document(p.policy_document()))
        } else {
            None
        };
        Ok(Some(Live {
            arn: role.arn().to_owned(),
            tagged: is_ours,
            trust: role.assume_role_policy_document().map(parse_document).unwrap_or(Value::Null),
            policy,
        }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    fn diff(&self, desired: &RoleSpec, live: &Live) -> Action {
        let mut differences = Vec::new();
        if live.trust != desired.trust {
            differences.push("trust policy".to_owned());
        }
        if live.policy != desired.policy {
            differences.push(format!("inline policy {POLICY_NAME}"));
        }
        Action::update_if(differences)
    }

    fn output(&self, aws: &Aws, _: &RoleSpec, live: Option<&Live>) -> String {
        live.map_or_else(|| arn(aws, self.name), |l| l.arn.clone())
    }

    async fn create(&self, aws: &Aws, desired: &RoleSpec) -> Result<String, AwsError> {
        let resource = self.label();
        let tag = Tag::builder()
            .key(TAG_KEY)
            .value(self.names.tag_value())
            .build()
            .map_err(|e| AwsError::new(&resource, op!("iam:CreateRole"), "invalid", e.to_string()))?;
        let created = aws
            .iam
            .create_role()
            .role_name(self.name)
            .assume_role_policy_document(desired.trust.to_string())
            .description(format!("ivsctl stack {}", self.names.stack))
            .tags(tag)
            .send()
            .await
            .on(&resource, op!("iam:CreateRole"))?;
        if desired.policy.is_some() {
            self.put_policy(aws, desired.policy.as_ref()).await?;
        }
        Ok(created.role().map_or_else(|| arn(aws, self.name), |r| r.arn().to_owned()))
    }

    async fn update(&self, aws: &Aws, desired: &RoleSpec, live: &Live) -> Result<String, AwsError> {
        if live.trust != desired.trust {
            aws.iam
                .update_assume_role_policy()
                .role_name(self.name)
                .policy_document(desired.trust.to_string())
                .send()
                .await
                .on(&self.label(), op!("iam:UpdateAssumeRolePolicy"))?;
        }
        if live.policy != desired.policy {
            self.put_policy(aws, desired.policy.as_ref()).await?;
        }
        Ok(live.arn.clone())
    }

    /// Its inline policies first: IAM refuses to delete a role that has any.
    async fn delete(&self, aws: &Aws, _: Live) -> Result<(), AwsError> {
        let resource = self.label();
        let policies = aws.iam.list_role_policies().role_name(self.name).send().await.on(&resource, op!("iam:ListRolePolicies"))?;
        for policy in policies.policy_names() {
            aws.iam.delete_role_policy().role_name(self.name).policy_name(policy).send().await.or_missing(
                &["NoSuchEntity"],
                &resource,
                op!("iam:DeleteRolePolicy"),
            )?;
        }
        aws.iam.delete_role().role_name(self.name).send().await.or_missing(&["NoSuchEntity"], &resource, op!("iam:DeleteRole"))?;
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        Observed::present(Some(live.arn.clone()), if live.policy.is_some() { "inline policy ivsctl" } else { "no permissions" })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn trust_and_inline_policy_are_compared_as_documents() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let role = Role { names: &names, name: "ivs-relay-task" };
        let spec = RoleSpec { trust: json!({"Statement": []}), policy: None };
        let live = |trust, policy| Live { arn: String::new(), tagged: true, trust, policy };
        assert_eq!(role.diff(&spec, &live(json!({"Statement": []}), None)), Action::NoOp);
        assert_eq!(
            role.diff(&spec, &live(json!({"Statement": [1]}), Some(json!({})))),
            Action::Update(vec!["trust policy".into(), "inline policy ivsctl".into()])
        );
    }
}
