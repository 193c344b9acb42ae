//! The ECR repository the relay image lives in.

use aws_sdk_ecr::types::Tag;

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;

const NOT_FOUND: &[&str] = &["RepositoryNotFoundException"];

/// Where the relay image is pushed to and pulled from.
#[derive(Debug, Clone)]
pub struct Repository {
    pub arn: String,
    pub uri: String,
}

impl Repository {
    /// The repository's ARN and URI follow from its name, so a dry run can name them too.
    pub fn of(aws: &Aws, names: &Names) -> Self {
        let host = if aws.partition == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" };
        Self {
            arn: aws.arn("ecr", &format!("repository/{}", names.repository)),
            uri: format!("{}.dkr.ecr.{}.{host}/{}", aws.account, aws.region, names.repository),
        }
    }
}

/// The stack's repository.
pub struct EcrRepository<'a>(pub &'a Names);

pub struct Live {
    repository: Repository,
    tagged: bool,
    images: usize,
}

impl Resource for EcrRepository<'_> {
    type Live = Live;
    type Desired = ();
    type Output = Repository;

    fn label(&self) -> String {
        format!("ECR repository {}", self.0.repository)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let resource = self.label();
        let name = &self.0.repository;
        let Some(found) = aws.ecr.describe_repositories().repository_names(name).send().await.or_missing(
            NOT_FOUND,
            &resource,
            op!("ecr:DescribeRepositories"),
        )?
        else {
            return Ok(None);
        };
        let Some(repository) = found.repositories().first() else { return Ok(None) };
        let arn = repository.repository_arn().unwrap_or_default().to_owned();
        let tags = aws.ecr.list_tags_for_resource().resource_arn(&arn).send().await.on(&resource, op!("ecr:ListTagsForResource"))?;
        let tagged = super::tagged(tags.tags().iter().map(|t| (t.key(), t.value())), self.0);
        let images = if tagged {
            aws.ecr.list_images().repository_name(name).send().await.on(&resource, op!("ecr:ListImages"))?.image_ids().len()
        } else {
            0
        };
        Ok(Some(Live { repository: Repository { arn, uri: repository.repository_uri().unwrap_or_default().to_owned() }, tagged, images }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    fn diff(&self, (): &(), _: &Live) -> Action {
        Action::NoOp
    }

    fn output(&self, aws: &Aws, (): &(), live: Option<&Live>) -> Repository {
        live.map_or_else(|| Repository::of(aws, self.0), |l| l.repository.clone())
    }

    async fn create(&self, aws: &Aws, (): &()) -> Result<Repository, AwsError> {
        let resource = self.label();
        let tag = Tag::builder()
            .key(TAG_KEY)
            .value(self.0.tag_value())
            .build()
            .map_err(|e| AwsError::new(&resource, op!("ecr:CreateRepository"), "InvalidRequest", e.to_string()))?;
        let created = aws
            .ecr
            .create_repository()
            .repository_name(&self.0.repository)
            .tags(tag)
            .send()
            .await
            .on(&resource, op!("ecr:CreateRepository"))?;
        Ok(created.repository().map_or_else(
            || Repository::of(aws, self.0),
            |r| Repository {
                arn: r.repository_arn().unwrap_or_default().to_owned(),
                uri: r.repository_uri().unwrap_or_default().to_owned(),
            },
        ))
    }

    async fn update(&self, aws: &Aws, (): &(), live: &Live) -> Result<Repository, AwsError> {
        Ok(self.output(aws, &(), Some(live)))
    }

    async fn delete(&self, aws: &Aws, _: Live) -> Result<(), AwsError> {
        // `force`: the images are the stack's too.
        aws.ecr.delete_repository().repository_name(&self.0.repository).force(true).send().await.or_missing(
            NOT_FOUND,
            &self.label(),
            op!("ecr:DeleteRepository"),
        )?;
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        Observed::present(Some(live.repository.uri.clone()), format!("{} image(s)", live.images))
    }
}
