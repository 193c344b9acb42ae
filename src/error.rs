//! AWS failures as one sentence: which resource, which call, the AWS error code, and what to do.

use std::fmt;

use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error)]
pub struct AwsError {
    /// What we were working on, e.g. `security group ivs-relay`.
    pub resource: String,
    /// The API call, e.g. `ec2:AuthorizeSecurityGroupIngress`.
    pub operation: &'static str,
    pub code: String,
    pub message: String,
}

impl AwsError {
    pub fn new(resource: impl Into<String>, operation: &'static str, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { resource: resource.into(), operation, code: code.into(), message: message.into() }
    }

    /// What the user can do about this error, when the code says.
    fn advice(&self) -> Option<&'static str> {
        Some(match self.code.as_str() {
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "UnauthorizedException" => {
                "the credentials in use lack this permission: `ivsctl policy` prints every permission ivsctl needs, to attach to them (README, \"Permissions\"); or use another --profile"
            }
            "InvalidClientTokenId" | "UnrecognizedClientException" | "ExpiredToken" | "ExpiredTokenException" | "SignatureDoesNotMatch" => {
                "the credentials are not valid: check --profile / AWS_ACCESS_KEY_ID, or run `aws sso login`"
            }
            "Throttling" | "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
                "AWS kept throttling after retries: wait a minute and run the command again"
            }
            "unreachable" => "check the network, --region and --endpoint-url (or --registry-url)",
            "UNAUTHORIZED" | "DENIED" | "HTTP 401" | "HTTP 403" => {
                "the credentials may not push to this repository: they need ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload, ecr:PutImage and ecr:BatchCheckLayerAvailability on it"
            }
            "timeout" => "AWS did not answer in time: check the network and run the command again",
            "NotTagged" => "it belongs to something else: choose another --stack name, or delete or tag it yourself",
            _ => return None,
        })
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} failed: {}: {}", self.resource, self.operation, self.code, self.message)?;
        if self.code.starts_with("AccessDenied") || self.code == "UnauthorizedOperation" {
            write!(f, " (missing permission: {})", self.operation)?;
        }
        if let Some(advice) = self.advice() {
            write!(f, " ({advice})")?;
        }
        Ok(())
    }
}

/// Turns an SDK result into one that names the resource and the call.
pub trait AwsResultExt<T> {
    fn on(self, resource: &str, operation: &'static str) -> Result<T, AwsError>;

    /// `Ok(None)` when AWS answers with one of `codes` (the ways each service says "no such thing").
    fn or_missing(self, codes: &[&str], resource: &str, operation: &'static str) -> Result<Option<T>, AwsError>;
}

impl<T, E, R> AwsResultExt<T> for Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    fn on(self, resource: &str, operation: &'static str) -> Result<T, AwsError> {
        self.map_err(|e| describe(&e, resource, operation))
    }

    fn or_missing(self, codes: &[&str], resource: &str, operation: &'static str) -> Result<Option<T>, AwsError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code().is_some_and(|c| codes.contains(&c)) => Ok(None),
            Err(e) => Err(describe(&e, resource, operation)),
        }
    }
}

/// The one-sentence form of an SDK error met on `resource` in `operation`.
pub fn describe<E, R>(e: &SdkError<E, R>, resource: &str, operation: &'static str) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let (code, message) = match e {
        SdkError::DispatchFailure(_) => ("unreachable".to_owned(), format!("cannot reach AWS: {}", DisplayErrorContext(e))),
        SdkError::TimeoutError(_) => ("timeout".to_owned(), DisplayErrorContext(e).to_string()),
        _ => (e.code().unwrap_or("unknown").to_owned(), e.message().map_or_else(|| DisplayErrorContext(e).to_string(), str::to_owned)),
    };
    AwsError { resource: resource.to_owned(), operation, code, message }
}

/// Whether an SDK error carries one of these codes (for retrying eventual consistency).
pub fn has_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>, codes: &[&str]) -> bool {
    e.code().is_some_and(|c| codes.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::AwsError;

    #[test]
    fn access_denied_names_the_missing_action_and_where_the_policy_is() {
        let e = AwsError::new("IAM role ivs-relay-task", "iam:CreateRole", "AccessDenied", "User: arn:aws:iam::1:user/d is not authorized");
        let text = e.to_string();
        assert!(text.contains("(missing permission: iam:CreateRole)"), "{text}");
        assert!(text.contains("`ivsctl policy`"), "{text}");
        let other = AwsError::new("ECS cluster ivs", "ecs:CreateCluster", "ClientException", "bad").to_string();
        assert!(!other.contains("missing permission"), "{other}");
    }
}
