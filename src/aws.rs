//! The AWS connection every command shares: configuration resolved as the `aws` CLI does
//! (profile, region, credentials, `AWS_ENDPOINT_URL`), one client per service, and the account.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::ProvideCredentials;

use crate::error::{AwsError, AwsResultExt};
use crate::op;

/// Where and as whom to connect, resolved from the command line.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Every call goes here (an emulator such as moto).
    pub endpoint_url: Option<String>,
}

/// Whether `region` has the shape of a region name in AWS's partitions (the SDK's partition
/// data: `us-east-1`, `cn-north-1`, `us-gov-west-1`, `eu-isoe-west-1`…). A shape, not a list, so a
/// region AWS opens tomorrow works today; a name that fits but does not exist fails at the first
/// call, with the same advice.
pub fn plausible_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let (Some(number), Some(geography)) = (parts.last(), parts.first()) else { return false };
    (3..=4).contains(&parts.len())
        && geography.len() == 2
        && number.chars().all(|c| c.is_ascii_digit())
        && !number.is_empty()
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no AWS region: pass --region, set AWS_REGION, or set a region in the profile")]
    NoRegion,
    #[error(
        "unknown region {0:?}: AWS region names look like us-east-1 (`aws ec2 describe-regions` lists them; use --endpoint-url for an emulator)"
    )]
    UnknownRegion(String),
    #[error("cannot reach AWS in region {region} ({cause}): check the region name (`aws ec2 describe-regions` lists them) and the network")]
    Unreachable { region: String, cause: String },
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
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
}

impl Aws {
    /// Resolves configuration and credentials and asks STS who we are, so a wrong profile,
    /// region or endpoint fails here, before anything is read or written.
    pub async fn connect(args: &Settings) -> Result<Self, ConnectError> {
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
        if !emulated && !plausible_region(&region) {
            return Err(ConnectError::UnknownRegion(region));
        }
        let credentials = config.credentials_provider().ok_or_else(|| ConnectError::NoCredentials("no provider".into()))?;
        credentials.provide_credentials().await.map_err(|e| ConnectError::NoCredentials(format!("{:#}", anyhow::Error::new(e))))?;

        let identity =
            match aws_sdk_sts::Client::new(&config).get_caller_identity().send().await.on("account", op!("sts:GetCallerIdentity")) {
                Err(e) if e.code == "unreachable" && !emulated => return Err(ConnectError::Unreachable { region, cause: e.message }),
                result => result?,
            };
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
            autoscaling: aws_sdk_applicationautoscaling::Client::new(&config),
        })
    }

    /// `arn:<partition>:<service>:<region>:<account>:<resource>`; IAM ARNs have no region.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        let region = if service == "iam" { "" } else { &self.region };
        format!("arn:{}:{service}:{region}:{}:{resource}", self.partition, self.account)
    }
}

/// The regions Amazon IVS runs in, from AWS's public SSM parameters on its global
/// infrastructure (a region AWS adds IVS to is listed there the same day).
pub async fn ivs_regions(aws: &Aws) -> Result<Vec<String>, AwsError> {
    const PATH: &str = "/aws/service/global-infrastructure/services/ivs/regions";
    let pages = aws
        .ssm
        .get_parameters_by_path()
        .path(PATH)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .on("Amazon IVS regions", op!("ssm:GetParametersByPath"))?;
    let mut regions: Vec<String> = pages.iter().flat_map(|page| page.parameters()).filter_map(|p| p.value()).map(str::to_owned).collect();
    regions.sort();
    Ok(regions)
}

#[cfg(test)]
mod tests {
    use super::plausible_region;

    #[test]
    fn region_names_are_checked_by_shape_so_new_regions_work() {
        for region in ["us-east-1", "ap-southeast-7", "cn-northwest-1", "us-gov-west-1", "eu-isoe-west-1", "xx-future-12"] {
            assert!(plausible_region(region), "{region}");
        }
        for region in ["nowhere-1", "us-east", "US-EAST-1", "us-east-1a", "useast1", "", "us--1"] {
            assert!(!plausible_region(region), "{region}");
        }
    }
}
