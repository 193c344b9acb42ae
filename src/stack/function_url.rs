//! The front door's public face: its Function URL (AuthType NONE: the relays' token is the
//! gate) and the two resource-policy statements a public URL needs. Function URLs made since
//! October 2025 are refused unless the policy grants both `lambda:InvokeFunctionUrl` and
//! `lambda:InvokeFunction` (the latter only via the URL).

use aws_sdk_lambda::types::{FunctionUrlAuthType, InvokeMode};
use serde_json::Value;

use super::resource::{Action, Resource};
use super::{Names, Observed};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;
use crate::wait::{PROPAGATION, retrying};

const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];
const BUSY: &[&str] = &["ResourceConflictException"];

/// The front door function's URL.
pub struct FunctionUrl<'a>(pub &'a Names);

/// What the URL config is live.
pub struct LiveUrl {
    pub url: String,
    auth_type: Option<FunctionUrlAuthType>,
    invoke_mode: Option<InvokeMode>,
}

impl Resource for FunctionUrl<'_> {
    type Live = LiveUrl;
    type Desired = ();
    /// The URL, once it exists (a dry run that would make it does not know it).
    type Output = Option<String>;

    fn label(&self) -> String {
        format!("Function URL of {}", self.0.front_door)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<LiveUrl>, AwsError> {
        let found = aws.lambda.get_function_url_config().function_name(&self.0.front_door).send().await.or_missing(
            NOT_FOUND,
            &self.label(),
            op!("lambda:GetFunctionUrlConfig"),
        )?;
        Ok(found.map(|c| LiveUrl {
            url: c.function_url().to_owned(),
            auth_type: Some(c.auth_type().clone()),
            invoke_mode: c.invoke_mode().cloned(),
        }))
    }

    /// It lives on the stack's function.
    fn is_ours(&self, _: &LiveUrl) -> bool {
        true
    }

    fn diff(&self, _: &(), live: &LiveUrl) -> Action {
        let mut differences = Vec::new();
        if live.auth_type != Some(FunctionUrlAuthType::None) {
            differences.push("auth type → NONE".to_owned());
        }
        if live.invoke_mode.as_ref().is_some_and(|m| *m != InvokeMode::Buffered) {
            differences.push("invoke mode → BUFFERED".to_owned());
        }
        Action::update_if(differences)
    }

    fn output(&self, _: &Aws, _: &(), live: Option<&LiveUrl>) -> Option<String> {
        live.map(|l| l.url.clone())
    }

    async fn create(&self, aws: &Aws, _: &()) -> Result<Option<String>, AwsError> {
        let made = retrying(BUSY, PROPAGATION, || {
            aws.lambda
                .create_function_url_config()
                .function_name(&self.0.front_door)
                .auth_type(FunctionUrlAuthType::None)
                .invoke_mode(InvokeMode::Buffered)
                .send()
        })
        .await
        .on(&self.label(), op!("lambda:CreateFunctionUrlConfig"))?;
        Ok(Some(made.function_url().to_owned()))
    }

    async fn update(&self, aws: &Aws, _: &(), live: &LiveUrl) -> Result<Option<String>, AwsError> {
        retrying(BUSY, PROPAGATION, || {
            aws.lambda
                .update_function_url_config()
                .function_name(&self.0.front_door)
                .auth_type(FunctionUrlAuthType::None)
                .invoke_mode(InvokeMode::Buffered)
                .send()
        })
        .await
        .on(&self.label(), op!("lambda:UpdateFunctionUrlConfig"))?;
        Ok(Some(live.url.clone()))
    }

    async fn delete(&self, aws: &Aws, _: LiveUrl) -> Result<(), AwsError> {
        aws.lambda.delete_function_url_config().function_name(&self.0.front_door).send().await.or_missing(
            NOT_FOUND,
            &self.label(),
            op!("lambda:DeleteFunctionUrlConfig"),
        )?;
        Ok(())
    }

    fn describe(&self, live: &LiveUrl) -> Observed {
        Observed::present(Some(live.url.clone()), "AuthType NONE")
    }
}

/// Which of the two public grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeAction {
    /// `lambda:InvokeFunctionUrl` for URLs with AuthType NONE.
    Url,
    /// `lambda:InvokeFunction`, only when invoked through the URL.
    Function,
}

impl InvokeAction {
    fn action(self) -> &'static str {
        match self {
            Self::Url => "lambda:InvokeFunctionUrl",
            Self::Function => "lambda:InvokeFunction",
        }
    }
}

/// One statement of the front door's resource policy letting anyone call its URL.
pub struct PublicInvoke<'a> {
    pub names: &'a Names,
    pub action: InvokeAction,
}

impl PublicInvoke<'_> {
    fn statement_id(&self) -> String {
        match self.action {
            InvokeAction::Url => format!("ivsctl-{}-public-url", self.names.stack),
            InvokeAction::Function => format!("ivsctl-{}-public-url-invoke", self.names.stack),
        }
    }

    async fn add(&self, aws: &Aws) -> Result<(), AwsError> {
        retrying(BUSY, PROPAGATION, || {
            let request = aws
                .lambda
                .add_permission()
                .function_name(&self.names.front_door)
                .statement_id(self.statement_id())
                .action(self.action.action())
                .principal("*");
            match self.action {
                InvokeAction::Url => request.function_url_auth_type(FunctionUrlAuthType::None),
                InvokeAction::Function => request.invoked_via_function_url(true),
            }
            .send()
        })
        .await
        .on(&self.label(), op!("lambda:AddPermission"))?;
        Ok(())
    }
}

/// The live statement: the action it grants, and to whom.
#[derive(Clone)]
pub struct Statement {
    action: String,
    principal: String,
}

impl Resource for PublicInvoke<'_> {
    type Live = Statement;
    type Desired = ();
    type Output = ();

    fn label(&self) -> String {
        format!("public {} permission of {}", self.action.action(), self.names.front_door)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Statement>, AwsError> {
        let statement = super::function::policy_statement(aws, &self.names.front_door, &self.statement_id(), &self.label()).await?;
        let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
        Ok(statement.map(|s| Statement {
            action: text(&s["Action"]),
            principal: s["Principal"].get("AWS").map_or_else(|| text(&s["Principal"]), text),
        }))
    }

    fn is_ours(&self, _: &Statement) -> bool {
        true
    }

    fn diff(&self, _: &(), live: &Statement) -> Action {
        let mut differences = Vec::new();
        if live.action != self.action.action() {
            differences.push(format!("action → {}", self.action.action()));
        }
        if live.principal != "*" {
            differences.push("principal → *".to_owned());
        }
        Action::update_if(differences)
    }

    fn output(&self, _: &Aws, _: &(), _: Option<&Statement>) {}

    async fn create(&self, aws: &Aws, _: &()) -> Result<(), AwsError> {
        self.add(aws).await
    }

    async fn update(&self, aws: &Aws, _: &(), live: &Statement) -> Result<(), AwsError> {
        self.delete(aws, live.clone()).await?;
        self.add(aws).await
    }

    async fn delete(&self, aws: &Aws, _: Statement) -> Result<(), AwsError> {
        aws.lambda.remove_permission().function_name(&self.names.front_door).statement_id(self.statement_id()).send().await.or_missing(
            NOT_FOUND,
            &self.label(),
            op!("lambda:RemovePermission"),
        )?;
        Ok(())
    }

    fn describe(&self, live: &Statement) -> Observed {
        Observed::present(None, format!("{} for {}", live.action, live.principal))
    }
}
