//! The `ivs-ip-register` Lambda (crate `lambda/`) and the permission that lets the EventBridge
//! rule invoke it. The code is uploaded again only when its SHA-256 differs from the live one
//! (the zip is built deterministically, so an unchanged binary uploads nothing).

use std::collections::HashMap;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, Runtime};
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::wait::{PROPAGATION, retrying};

const TIMEOUT_SECONDS: i32 = 10;
const MEMORY_MB: i32 = 128;
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];
/// Lambda refuses changes while a previous update is still being applied.
const BUSY: &[&str] = &["ResourceConflictException"];

/// The function's code and settings as the stack wants them.
pub struct FunctionSpec<'a> {
    pub zip: &'a [u8],
    pub role_arn: &'a str,
    pub cluster_arn: &'a str,
}

impl FunctionSpec<'_> {
    /// How Lambda reports a package: base64 of its SHA-256.
    fn code_sha256(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(self.zip))
    }

    fn environment(&self, names: &Names) -> HashMap<String, String> {
        HashMap::from([("REGISTRY_TABLE".to_owned(), names.table.clone()), ("CLUSTER".to_owned(), self.cluster_arn.to_owned())])
    }
}

fn label(names: &Names) -> String {
    format!("Lambda function {}", names.function)
}

pub fn arn(aws: &Aws, names: &Names) -> String {
    aws.arn("lambda", &format!("function:{}", names.function))
}

struct LiveFunction {
    arn: String,
    tagged: bool,
    code_sha256: String,
    /// Settings that differ from the spec's, by name.
    differences: Vec<String>,
}

async fn read(aws: &Aws, names: &Names, spec: Option<&FunctionSpec<'_>>) -> Result<Option<LiveFunction>, AwsError> {
    let Some(found) =
        aws.lambda.get_function().function_name(&names.function).send().await.or_missing(NOT_FOUND, &label(names), "lambda:GetFunction")?
    else {
        return Ok(None);
    };
    let Some(config) = found.configuration() else { return Ok(None) };
    let tagged = found.tags().and_then(|t| t.get(TAG_KEY)).is_some_and(|v| v == names.tag_value());
    let mut differences = Vec::new();
    if let Some(spec) = spec {
        let live_env = config.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
        let checks = [
            ("role", config.role() == Some(spec.role_arn)),
            ("runtime", config.runtime() == Some(&Runtime::Providedal2023)),
            ("handler", config.handler() == Some("bootstrap")),
            ("environment", live_env == spec.environment(names)),
            ("timeout", config.timeout() == Some(TIMEOUT_SECONDS)),
            ("memory", config.memory_size() == Some(MEMORY_MB)),
            ("architecture", config.architectures().is_empty() || config.architectures() == [Architecture::X8664]),
        ];
        differences.extend(checks.iter().filter(|(_, same)| !same).map(|(name, _)| (*name).to_owned()));
    }
    Ok(Some(LiveFunction {
        arn: config.function_arn().unwrap_or_default().to_owned(),
        tagged,
        code_sha256: config.code_sha256().unwrap_or_default().to_owned(),
        differences,
    }))
}

/// Creates the function, or uploads new code and settings where they differ; returns its ARN.
pub async fn ensure(aws: &Aws, names: &Names, spec: &FunctionSpec<'_>, mode: Mode) -> Result<(Change, String), AwsError> {
    let resource = label(names);
    let environment = Environment::builder().set_variables(Some(spec.environment(names))).build();
    let Some(live) = read(aws, names, Some(spec)).await? else {
        if mode == Mode::Apply {
            let code = FunctionCode::builder().zip_file(Blob::new(spec.zip)).build();
            // A role created seconds ago is not yet assumable by Lambda.
            retrying(&["InvalidParameterValueException"], PROPAGATION, || {
                aws.lambda
                    .create_function()
                    .function_name(&names.function)
                    .description(format!("ivsctl stack {}: registers the relay tasks' public addresses", names.stack))
                    .runtime(Runtime::Providedal2023)
                    .architectures(Architecture::X8664)
                    .handler("bootstrap")
                    .role(spec.role_arn)
                    .code(code.clone())
                    .environment(environment.clone())
                    .timeout(TIMEOUT_SECONDS)
                    .memory_size(MEMORY_MB)
                    .tags(TAG_KEY, names.tag_value())
                    .send()
            })
            .await
            .on(&resource, "lambda:CreateFunction")?;
        }
        return Ok((Change::Created, arn(aws, names)));
    };
    if !live.tagged {
        return Err(not_ours(&resource, &names.stack));
    }
    let mut differences = Vec::new();
    if live.code_sha256 != spec.code_sha256() {
        differences.push("code".to_owned());
        if mode == Mode::Apply {
            retrying(BUSY, PROPAGATION, || {
                aws.lambda.update_function_code().function_name(&names.function).zip_file(Blob::new(spec.zip)).send()
            })
            .await
            .on(&resource, "lambda:UpdateFunctionCode")?;
        }
    }
    if !live.differences.is_empty() {
        if mode == Mode::Apply {
            retrying(BUSY, PROPAGATION, || {
                aws.lambda
                    .update_function_configuration()
                    .function_name(&names.function)
                    .runtime(Runtime::Providedal2023)
                    .handler("bootstrap")
                    .role(spec.role_arn)
                    .environment(environment.clone())
                    .timeout(TIMEOUT_SECONDS)
                    .memory_size(MEMORY_MB)
                    .send()
            })
            .await
            .on(&resource, "lambda:UpdateFunctionConfiguration")?;
        }
        differences.extend(live.differences);
    }
    Ok((Change::from_differences(differences), live.arn))
}

pub async fn remove(aws: &Aws, names: &Names, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    Found::of(read(aws, names, None).await?, |live| live.tagged)
        .remove(mode, async |_| {
            aws.lambda.delete_function().function_name(&names.function).send().await.or_missing(
                NOT_FOUND,
                &resource,
                "lambda:DeleteFunction",
            )?;
            Ok(())
        })
        .await
}

pub async fn observe(aws: &Aws, names: &Names) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names, None).await?, |live| live.tagged)
        .observe(|live| Observed::present(Some(live.arn), format!("code sha256 {}", live.code_sha256))))
}

fn statement_id(names: &Names) -> String {
    format!("ivsctl-{}-events", names.stack)
}

/// The rule ARN the function's invoke permission for EventBridge names, if any.
async fn permitted_source(aws: &Aws, names: &Names) -> Result<Option<String>, AwsError> {
    let resource = format!("invoke permission of {}", names.function);
    let Some(policy) =
        aws.lambda.get_policy().function_name(&names.function).send().await.or_missing(NOT_FOUND, &resource, "lambda:GetPolicy")?
    else {
        return Ok(None);
    };
    let document: Value = serde_json::from_str(policy.policy().unwrap_or("{}")).unwrap_or(Value::Null);
    let id = statement_id(names);
    let statement = document["Statement"].as_array().into_iter().flatten().find(|s| s["Sid"] == id.as_str());
    Ok(statement.map(|s| s["Condition"]["ArnLike"]["AWS:SourceArn"].as_str().unwrap_or_default().to_owned()))
}

/// Lets the stack's EventBridge rule (and only it) invoke the function.
pub async fn ensure_permission(aws: &Aws, names: &Names, rule_arn: &str, mode: Mode) -> Result<Change, AwsError> {
    let resource = format!("invoke permission of {}", names.function);
    let current = if mode == Mode::DryRun && read(aws, names, None).await?.is_none() { None } else { permitted_source(aws, names).await? };
    let change = match current.as_deref() {
        Some(source) if source == rule_arn => return Ok(Change::Unchanged),
        Some(_) => Change::Updated(vec!["source rule".to_owned()]),
        None => Change::Created,
    };
    if mode == Mode::Apply {
        if current.is_some() {
            aws.lambda.remove_permission().function_name(&names.function).statement_id(statement_id(names)).send().await.or_missing(
                NOT_FOUND,
                &resource,
                "lambda:RemovePermission",
            )?;
        }
        retrying(BUSY, PROPAGATION, || {
            aws.lambda
                .add_permission()
                .function_name(&names.function)
                .statement_id(statement_id(names))
                .action("lambda:InvokeFunction")
                .principal("events.amazonaws.com")
                .source_arn(rule_arn)
                .send()
        })
        .await
        .on(&resource, "lambda:AddPermission")?;
    }
    Ok(change)
}
