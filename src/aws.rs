//! The AWS connection every command shares: configuration resolved as the `aws` CLI does
//! (profile, region, credentials, `AWS_ENDPOINT_URL`), one client per service, and the account.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::ProvideCredentials;

use crate::cli::AwsArgs;
use crate::error::{AwsError, AwsResultExt};

/// Regions AWS runs (commercial, China, GovCloud). Checked before any request so a typo is one
/// clear line instead of a DNS failure; with `--endpoint-url` (an emulator) any name goes.
const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no AWS region: pass --region, set AWS_REGION, or set a region in the profile")]
    NoRegion,
    #[error("unknown region {0:?}: AWS has no such region (use --endpoint-url for an emulator)")]
    UnknownRegion(String),
    #[error(
        "no usable AWS credentials ({0}): set AWS_PROFILE or --profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws sso login`"
    )]
    NoCredentials(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Clients for every service the stack uses, with the account and region they act in.
#[derive(Clone)]
pub struct Aws {
    pub region: String,
    pub account: String,
    /// `aws`, `aws-cn` or `aws-us-gov`: the first field of every ARN.
    pub partition: &'static str,
    pub iam: aws_sdk_iam::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub ivs: aws_sdk_ivs::Client,
}

impl Aws {
    /// Resolves configuration and credentials and asks STS who we are, so a wrong profile,
    /// region or endpoint fails here, before anything is read or written.
    pub async fn connect(args: &AwsArgs) -> Result<Self, ConnectError> {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).retry_config(RetryConfig::standard().with_max_attempts(6)).timeout_config(
                TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).operation_attempt_timeout(Duration::from_secs(60)).build(),
            );
        if let Some(profile) = &args.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &args.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &args.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        let region = config.region().ok_or(ConnectError::NoRegion)?.to_string();
        let emulated = config.endpoint_url().is_some();
        if !emulated && !KNOWN_REGIONS.contains(&region.as_str()) {
            return Err(ConnectError::UnknownRegion(region));
        }
        let credentials = config.credentials_provider().ok_or_else(|| ConnectError::NoCredentials("no provider".into()))?;
        credentials.provide_credentials().await.map_err(|e| ConnectError::NoCredentials(error_chain(&e)))?;

        let identity = aws_sdk_sts::Client::new(&config).get_caller_identity().send().await.on("account", "sts:GetCallerIdentity")?;
        let account = identity.account().unwrap_or_default().to_owned();
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Ok(Self {
            region,
            account,
            partition,
            iam: aws_sdk_iam::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            ecs: aws_sdk_ecs::Client::new(&config),
            ecr: aws_sdk_ecr::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            ivs: aws_sdk_ivs::Client::new(&config),
        })
    }

    /// `arn:<partition>:<service>:<region>:<account>:<resource>`; IAM ARNs have no region.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        let region = if service == "iam" { "" } else { &self.region };
        format!("arn:{}:{service}:{region}:{}:{resource}", self.partition, self.account)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
