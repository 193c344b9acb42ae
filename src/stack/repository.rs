//! The ECR repository the relay image lives in.

use aws_sdk_ecr::types::Tag;

use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

const NOT_FOUND: &[&str] = &["RepositoryNotFoundException"];

/// Where the relay image is pushed to and pulled from.
#[derive(Debug, Clone)]
pub struct Repository {
    pub arn: String,
    pub uri: String,
}

fn label(names: &Names) -> String {
    format!("ECR repository {}", names.repository)
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

async fn read(aws: &Aws, names: &Names) -> Result<Option<(Repository, bool)>, AwsError> {
    let resource = label(names);
    let Some(found) = aws.ecr.describe_repositories().repository_names(&names.repository).send().await.or_missing(
        NOT_FOUND,
        &resource,
        "ecr:DescribeRepositories",
    )?
    else {
        return Ok(None);
    };
    let Some(repository) = found.repositories().first() else { return Ok(None) };
    let arn = repository.repository_arn().unwrap_or_default().to_owned();
    let tags = aws.ecr.list_tags_for_resource().resource_arn(&arn).send().await.on(&resource, "ecr:ListTagsForResource")?;
    let tagged = super::tagged(tags.tags().iter().map(|t| (t.key(), t.value())), names);
    Ok(Some((Repository { arn, uri: repository.repository_uri().unwrap_or_default().to_owned() }, tagged)))
}

pub async fn ensure(aws: &Aws, names: &Names, mode: Mode) -> Result<(Change, Repository), AwsError> {
    let resource = label(names);
    match read(aws, names).await? {
        Some((_, false)) => Err(not_ours(&resource, &names.stack)),
        Some((repository, true)) => Ok((Change::Unchanged, repository)),
        None if mode == Mode::DryRun => Ok((Change::Created, Repository::of(aws, names))),
        None => {
            let tag = Tag::builder()
                .key(TAG_KEY)
                .value(names.tag_value())
                .build()
                .map_err(|e| AwsError::new(&resource, "ecr:CreateRepository", "InvalidRequest", e.to_string()))?;
            let created = aws
                .ecr
                .create_repository()
                .repository_name(&names.repository)
                .tags(tag)
                .send()
                .await
                .on(&resource, "ecr:CreateRepository")?;
            let repository = created.repository().map_or_else(
                || Repository::of(aws, names),
                |r| Repository {
                    arn: r.repository_arn().unwrap_or_default().to_owned(),
                    uri: r.repository_uri().unwrap_or_default().to_owned(),
                },
            );
            Ok((Change::Created, repository))
        }
    }
}

pub async fn remove(aws: &Aws, names: &Names, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    Found::of(read(aws, names).await?, |(_, tagged)| *tagged)
        .remove(mode, async |_| {
            // `force`: the images are the stack's too.
            aws.ecr.delete_repository().repository_name(&names.repository).force(true).send().await.or_missing(
                NOT_FOUND,
                &resource,
                "ecr:DeleteRepository",
            )?;
            Ok(())
        })
        .await
}

pub async fn observe(aws: &Aws, names: &Names) -> Result<Observed, AwsError> {
    Ok(match Found::of(read(aws, names).await?, |(_, tagged)| *tagged) {
        Found::Missing => Observed::Missing,
        Found::NotOurs => Observed::NotOurs,
        Found::Ours((repository, _)) => {
            let images = aws.ecr.list_images().repository_name(&names.repository).send().await.on(&label(names), "ecr:ListImages")?;
            Observed::present(Some(repository.uri), format!("{} image(s)", images.image_ids().len()))
        }
    })
}
