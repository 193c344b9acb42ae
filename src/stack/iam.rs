//! IAM roles: the relay task's execution role (pull the image, write logs, read its secrets),
//! the relay task role (the relay calls no AWS API, so it holds nothing), and the Lambda role.
//! Each role has its trust policy and at most one inline policy, named `ivsctl`.

use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours, tagged};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

const POLICY_NAME: &str = "ivsctl";

/// A role as the stack wants it.
pub struct RoleSpec {
    pub name: String,
    pub trust: Value,
    pub policy: Option<Value>,
}

struct LiveRole {
    arn: String,
    tagged: bool,
    trust: Value,
    policy: Option<Value>,
}

fn label(name: &str) -> String {
    format!("IAM role {name}")
}

/// IAM returns policy documents URL-encoded.
fn parse_document(text: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(Value::Null)
}

async fn read(aws: &Aws, names: &Names, name: &str) -> Result<Option<LiveRole>, AwsError> {
    let resource = label(name);
    let Some(output) = aws.iam.get_role().role_name(name).send().await.or_missing(&["NoSuchEntity"], &resource, "iam:GetRole")? else {
        return Ok(None);
    };
    let Some(role) = output.role() else { return Ok(None) };
    let is_ours = tagged(role.tags().iter().map(|t| (t.key(), t.value())), names);
    let policy = if is_ours {
        aws.iam
            .get_role_policy()
            .role_name(name)
            .policy_name(POLICY_NAME)
            .send()
            .await
            .or_missing(&["NoSuchEntity"], &resource, "iam:GetRolePolicy")?
            .map(|p| parse_document(p.policy_document()))
    } else {
        None
    };
    Ok(Some(LiveRole {
        arn: role.arn().to_owned(),
        tagged: is_ours,
        trust: role.assume_role_policy_document().map(parse_document).unwrap_or(Value::Null),
        policy,
    }))
}

/// Creates the role or brings its trust and inline policy back to `spec`; returns its ARN.
pub async fn ensure(aws: &Aws, names: &Names, spec: &RoleSpec, mode: Mode) -> Result<(Change, String), AwsError> {
    let resource = label(&spec.name);
    let arn = aws.arn("iam", &format!("role/{}", spec.name));
    let Some(live) = read(aws, names, &spec.name).await? else {
        if mode == Mode::Apply {
            let tag = Tag::builder()
                .key(TAG_KEY)
                .value(names.tag_value())
                .build()
                .map_err(|e| AwsError::new(&resource, "iam:CreateRole", "invalid", e.to_string()))?;
            aws.iam
                .create_role()
                .role_name(&spec.name)
                .assume_role_policy_document(spec.trust.to_string())
                .description(format!("ivsctl stack {}", names.stack))
                .tags(tag)
                .send()
                .await
                .on(&resource, "iam:CreateRole")?;
            put_policy(aws, spec, &resource).await?;
        }
        return Ok((Change::Created, arn));
    };
    if !live.tagged {
        return Err(not_ours(&resource, &names.stack));
    }
    let mut differences = Vec::new();
    if live.trust != spec.trust {
        differences.push("trust policy".to_owned());
        if mode == Mode::Apply {
            aws.iam
                .update_assume_role_policy()
                .role_name(&spec.name)
                .policy_document(spec.trust.to_string())
                .send()
                .await
                .on(&resource, "iam:UpdateAssumeRolePolicy")?;
        }
    }
    if live.policy != spec.policy {
        differences.push(format!("inline policy {POLICY_NAME}"));
        if mode == Mode::Apply {
            put_policy(aws, spec, &resource).await?;
        }
    }
    Ok((Change::from_differences(differences), live.arn))
}

async fn put_policy(aws: &Aws, spec: &RoleSpec, resource: &str) -> Result<(), AwsError> {
    match &spec.policy {
        Some(policy) => {
            aws.iam
                .put_role_policy()
                .role_name(&spec.name)
                .policy_name(POLICY_NAME)
                .policy_document(policy.to_string())
                .send()
                .await
                .on(resource, "iam:PutRolePolicy")?;
        }
        None => {
            aws.iam.delete_role_policy().role_name(&spec.name).policy_name(POLICY_NAME).send().await.or_missing(
                &["NoSuchEntity"],
                resource,
                "iam:DeleteRolePolicy",
            )?;
        }
    }
    Ok(())
}

/// Deletes the role (its inline policies first) if it is this stack's.
pub async fn remove(aws: &Aws, names: &Names, name: &str, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(name);
    Found::of(read(aws, names, name).await?, |live| live.tagged)
        .remove(mode, async |_| {
            let policies = aws.iam.list_role_policies().role_name(name).send().await.on(&resource, "iam:ListRolePolicies")?;
            for policy in policies.policy_names() {
                aws.iam.delete_role_policy().role_name(name).policy_name(policy).send().await.or_missing(
                    &["NoSuchEntity"],
                    &resource,
                    "iam:DeleteRolePolicy",
                )?;
            }
            aws.iam.delete_role().role_name(name).send().await.or_missing(&["NoSuchEntity"], &resource, "iam:DeleteRole")?;
            Ok(())
        })
        .await
}

pub async fn observe(aws: &Aws, names: &Names, name: &str) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names, name).await?, |live| live.tagged)
        .observe(|live| Observed::present(Some(live.arn), if live.policy.is_some() { "inline policy ivsctl" } else { "no permissions" })))
}
