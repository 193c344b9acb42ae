//! The stack's two Lambda functions, both the `lambda/` crate's one bootstrap: the registry
//! (invoked by the EventBridge rule, through the permission here) and the front door (behind its
//! Function URL, `function_url`). The code is uploaded again only when its SHA-256 differs from
//! the live one (the zip is built deterministically, so an unchanged binary uploads nothing).

use std::collections::HashMap;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, PackageType, Runtime};
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;
use crate::wait::{PROPAGATION, retrying};

const MEMORY_MB: i32 = 128;
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];
/// Lambda refuses changes while a previous update is still being applied.
const BUSY: &[&str] = &["ResourceConflictException"];

/// One of the stack's functions.
pub struct Function<'a> {
    names: &'a Names,
    name: &'a str,
    /// What it does, for its description.
    purpose: &'static str,
}

impl<'a> Function<'a> {
    /// The registry: records the relay tasks' public addresses.
    pub fn registry(names: &'a Names) -> Self {
        Self { names, name: &names.function, purpose: "registers the relay tasks' public addresses" }
    }

    /// The front door: the web app and WHIP, in front of the relays.
    pub fn front_door(names: &'a Names) -> Self {
        Self { names, name: &names.front_door, purpose: "the front door: web app and WHIP in front of the relays" }
    }
}

/// The function's code and settings as the stack wants them.
pub struct FunctionSpec {
    pub zip: Vec<u8>,
    pub role_arn: String,
    pub environment: HashMap<String, String>,
    pub timeout_seconds: i32,
}

impl FunctionSpec {
    /// How Lambda reports a package: base64 of its SHA-256.
    fn code_sha256(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&self.zip))
    }
}

pub fn arn(aws: &Aws, name: &str) -> String {
    aws.arn("lambda", &format!("function:{name}"))
}

/// The settings of a live function that ivsctl sets.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub arn: String,
    pub tagged: bool,
    pub code_sha256: String,
    pub role: String,
    pub runtime: Option<Runtime>,
    pub handler: String,
    pub environment: HashMap<String, String>,
    pub timeout: Option<i32>,
    pub memory: Option<i32>,
    pub architectures: Vec<Architecture>,
    pub package_type: Option<PackageType>,
}

impl Function<'_> {
    async fn update_configuration(&self, aws: &Aws, desired: &FunctionSpec) -> Result<(), AwsError> {
        let environment = Environment::builder().set_variables(Some(desired.environment.clone())).build();
        retrying(BUSY, PROPAGATION, || {
            aws.lambda
                .update_function_configuration()
                .function_name(self.name)
                .runtime(Runtime::Providedal2023)
                .handler("bootstrap")
                .role(&desired.role_arn)
                .environment(environment.clone())
                .timeout(desired.timeout_seconds)
                .memory_size(MEMORY_MB)
                .send()
        })
        .await
        .on(&self.label(), op!("lambda:UpdateFunctionConfiguration"))?;
        Ok(())
    }

    /// Settings that differ and can change in place, by name.
    fn setting_differences(desired: &FunctionSpec, live: &Live) -> Vec<String> {
        let checks = [
            ("role", live.role == desired.role_arn),
            ("runtime", live.runtime == Some(Runtime::Providedal2023)),
            ("handler", live.handler == "bootstrap"),
            ("environment", live.environment == desired.environment),
            ("timeout", live.timeout == Some(desired.timeout_seconds)),
            ("memory", live.memory == Some(MEMORY_MB)),
        ];
        checks.iter().filter(|(_, same)| !same).map(|(name, _)| (*name).to_owned()).collect()
    }
}

impl Resource for Function<'_> {
    type Live = Live;
    type Desired = FunctionSpec;
    /// The function's ARN.
    type Output = String;

    fn label(&self) -> String {
        format!("Lambda function {}", self.name)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let Some(found) = aws.lambda.get_function().function_name(self.name).send().await.or_missing(
            NOT_FOUND,
            &self.label(),
            op!("lambda:GetFunction"),
        )?
        else {
            return Ok(None);
        };
        let Some(config) = found.configuration() else { return Ok(None) };
        Ok(Some(Live {
            arn: config.function_arn().unwrap_or_default().to_owned(),
            tagged: found.tags().and_then(|t| t.get(TAG_KEY)).is_some_and(|v| v == self.names.tag_value()),
            code_sha256: config.code_sha256().unwrap_or_default().to_owned(),
            role: config.role().unwrap_or_default().to_owned(),
            runtime: config.runtime().cloned(),
            handler: config.handler().unwrap_or_default().to_owned(),
            environment: config.environment().and_then(|e| e.variables()).cloned().unwrap_or_default(),
            timeout: config.timeout(),
            memory: config.memory_size(),
            architectures: config.architectures().to_vec(),
            package_type: config.package_type().cloned(),
        }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    fn diff(&self, desired: &FunctionSpec, live: &Live) -> Action {
        // Lambda keeps a function's package type, and its architecture changes only together
        // with new code: a function changed there by hand is made again.
        if !(live.architectures.is_empty() || live.architectures == [Architecture::X8664]) {
            let live: Vec<&str> = live.architectures.iter().map(Architecture::as_str).collect();
            return Action::Replace(format!("architecture {} → x86_64", live.join(",")));
        }
        if live.package_type.as_ref().is_some_and(|p| *p != PackageType::Zip) {
            return Action::Replace("package type → Zip".to_owned());
        }
        let mut differences = Vec::new();
        if live.code_sha256 != desired.code_sha256() {
            differences.push("code".to_owned());
        }
        differences.extend(Self::setting_differences(desired, live));
        Action::update_if(differences)
    }

    fn output(&self, aws: &Aws, _: &FunctionSpec, _: Option<&Live>) -> String {
        arn(aws, self.name)
    }

    async fn create(&self, aws: &Aws, desired: &FunctionSpec) -> Result<String, AwsError> {
        let code = FunctionCode::builder().zip_file(Blob::new(desired.zip.clone())).build();
        let environment = Environment::builder().set_variables(Some(desired.environment.clone())).build();
        // A role created seconds ago is not yet assumable by Lambda.
        retrying(&["InvalidParameterValueException"], PROPAGATION, || {
            aws.lambda
                .create_function()
                .function_name(self.name)
                .description(format!("ivsctl stack {}: {}", self.names.stack, self.purpose))
                .runtime(Runtime::Providedal2023)
                .architectures(Architecture::X8664)
                .handler("bootstrap")
                .role(&desired.role_arn)
                .code(code.clone())
                .environment(environment.clone())
                .timeout(desired.timeout_seconds)
                .memory_size(MEMORY_MB)
                .tags(TAG_KEY, self.names.tag_value())
                .send()
        })
        .await
        .on(&self.label(), op!("lambda:CreateFunction"))?;
        Ok(arn(aws, self.name))
    }

    async fn update(&self, aws: &Aws, desired: &FunctionSpec, live: &Live) -> Result<String, AwsError> {
        if live.code_sha256 != desired.code_sha256() {
            retrying(BUSY, PROPAGATION, || {
                aws.lambda.update_function_code().function_name(self.name).zip_file(Blob::new(desired.zip.clone())).send()
            })
            .await
            .on(&self.label(), op!("lambda:UpdateFunctionCode"))?;
        }
        if !Self::setting_differences(desired, live).is_empty() {
            self.update_configuration(aws, desired).await?;
        }
        Ok(live.arn.clone())
    }

    async fn delete(&self, aws: &Aws, _: Live) -> Result<(), AwsError> {
        aws.lambda.delete_function().function_name(self.name).send().await.or_missing(
            NOT_FOUND,
            &self.label(),
            op!("lambda:DeleteFunction"),
        )?;
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        Observed::present(Some(live.arn.clone()), format!("code sha256 {}", live.code_sha256))
    }
}

/// The statement `sid` of `function`'s resource policy, if the function and the statement exist.
pub async fn policy_statement(aws: &Aws, function: &str, sid: &str, label: &str) -> Result<Option<Value>, AwsError> {
    let Some(policy) =
        aws.lambda.get_policy().function_name(function).send().await.or_missing(NOT_FOUND, label, op!("lambda:GetPolicy"))?
    else {
        return Ok(None);
    };
    let document: Value = serde_json::from_str(policy.policy().unwrap_or("{}")).unwrap_or(Value::Null);
    Ok(document["Statement"].as_array().into_iter().flatten().find(|s| s["Sid"] == sid).cloned())
}

/// The function's resource policy statement that lets the stack's rule (and only it) invoke it.
pub struct Permission<'a>(pub &'a Names);

impl Permission<'_> {
    fn statement_id(&self) -> String {
        format!("ivsctl-{}-events", self.0.stack)
    }

    async fn add(&self, aws: &Aws, rule_arn: &str) -> Result<(), AwsError> {
        retrying(BUSY, PROPAGATION, || {
            aws.lambda
                .add_permission()
                .function_name(&self.0.function)
                .statement_id(self.statement_id())
                .action("lambda:InvokeFunction")
                .principal("events.amazonaws.com")
                .source_arn(rule_arn)
                .send()
        })
        .await
        .on(&self.label(), op!("lambda:AddPermission"))?;
        Ok(())
    }
}

/// The rule ARN the statement names.
pub struct Source(String);

impl Resource for Permission<'_> {
    type Live = Source;
    /// The rule's ARN.
    type Desired = String;
    type Output = ();

    fn label(&self) -> String {
        format!("invoke permission of {}", self.0.function)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Source>, AwsError> {
        let statement = policy_statement(aws, &self.0.function, &self.statement_id(), &self.label()).await?;
        Ok(statement.map(|s| Source(s["Condition"]["ArnLike"]["AWS:SourceArn"].as_str().unwrap_or_default().to_owned())))
    }

    /// It lives on the stack's function.
    fn is_ours(&self, _: &Source) -> bool {
        true
    }

    fn diff(&self, rule_arn: &String, live: &Source) -> Action {
        if live.0 == *rule_arn { Action::NoOp } else { Action::Update(vec!["source rule".to_owned()]) }
    }

    fn output(&self, _: &Aws, _: &String, _: Option<&Source>) {}

    async fn create(&self, aws: &Aws, rule_arn: &String) -> Result<(), AwsError> {
        self.add(aws, rule_arn).await
    }

    async fn update(&self, aws: &Aws, rule_arn: &String, live: &Source) -> Result<(), AwsError> {
        self.delete(aws, Source(live.0.clone())).await?;
        self.add(aws, rule_arn).await
    }

    async fn delete(&self, aws: &Aws, _: Source) -> Result<(), AwsError> {
        aws.lambda.remove_permission().function_name(&self.0.function).statement_id(self.statement_id()).send().await.or_missing(
            NOT_FOUND,
            &self.label(),
            op!("lambda:RemovePermission"),
        )?;
        Ok(())
    }

    fn describe(&self, live: &Source) -> Observed {
        Observed::present(Some(live.0.clone()), "EventBridge may invoke")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FunctionSpec {
        FunctionSpec {
            zip: b"zip".to_vec(),
            role_arn: "arn:role".into(),
            environment: HashMap::from([("REGISTRY_TABLE".to_owned(), "ivs-relays".to_owned())]),
            timeout_seconds: 10,
        }
    }

    fn matching(spec: &FunctionSpec) -> Live {
        Live {
            code_sha256: spec.code_sha256(),
            role: spec.role_arn.clone(),
            runtime: Some(Runtime::Providedal2023),
            handler: "bootstrap".into(),
            environment: spec.environment.clone(),
            timeout: Some(spec.timeout_seconds),
            memory: Some(MEMORY_MB),
            architectures: vec![Architecture::X8664],
            package_type: Some(PackageType::Zip),
            tagged: true,
            ..Live::default()
        }
    }

    #[test]
    fn new_code_and_changed_settings_update_in_place() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let spec = spec();
        assert_eq!(Function::registry(&names).diff(&spec, &matching(&spec)), Action::NoOp);
        let drifted = Live { code_sha256: "other".into(), timeout: Some(3), ..matching(&spec) };
        assert_eq!(Function::registry(&names).diff(&spec, &drifted), Action::Update(vec!["code".into(), "timeout".into()]));
    }

    #[test]
    fn another_architecture_or_package_type_replaces_the_function() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let spec = spec();
        let arm = Live { architectures: vec![Architecture::Arm64], ..matching(&spec) };
        assert_eq!(Function::registry(&names).diff(&spec, &arm), Action::Replace("architecture arm64 → x86_64".into()));
        let image = Live { package_type: Some(PackageType::Image), ..matching(&spec) };
        assert!(matches!(Function::registry(&names).diff(&spec, &image), Action::Replace(_)));
    }
}
