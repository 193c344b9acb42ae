//! CloudWatch log groups: the relay's (awslogs driver) and the Lambda's, each with the stack's
//! retention so logs don't pile up forever.

use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

/// The retention periods CloudWatch Logs accepts.
pub const RETENTION_DAYS: &[i32] =
    &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

struct LiveGroup {
    tagged: bool,
    retention: Option<i32>,
}

fn label(name: &str) -> String {
    format!("log group {name}")
}

async fn read(aws: &Aws, names: &Names, name: &str) -> Result<Option<LiveGroup>, AwsError> {
    let resource = label(name);
    let found = aws.logs.describe_log_groups().log_group_name_prefix(name).send().await.on(&resource, "logs:DescribeLogGroups")?;
    let Some(group) = found.log_groups().iter().find(|g| g.log_group_name() == Some(name)) else { return Ok(None) };
    let arn = aws.arn("logs", &format!("log-group:{name}"));
    let tags = aws.logs.list_tags_for_resource().resource_arn(&arn).send().await.on(&resource, "logs:ListTagsForResource")?;
    let tagged = tags.tags().and_then(|t| t.get(TAG_KEY)).is_some_and(|v| v == names.tag_value());
    Ok(Some(LiveGroup { tagged, retention: group.retention_in_days() }))
}

pub async fn ensure(aws: &Aws, names: &Names, name: &str, retention_days: i32, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(name);
    let change = match read(aws, names, name).await? {
        None => {
            if mode == Mode::Apply {
                aws.logs
                    .create_log_group()
                    .log_group_name(name)
                    .tags(TAG_KEY, names.tag_value())
                    .send()
                    .await
                    .on(&resource, "logs:CreateLogGroup")?;
            }
            Change::Created
        }
        Some(live) if !live.tagged => return Err(not_ours(&resource, &names.stack)),
        Some(live) if live.retention == Some(retention_days) => return Ok(Change::Unchanged),
        Some(live) => Change::Updated(vec![format!(
            "retention {} → {retention_days} days",
            live.retention.map_or_else(|| "never expire".to_owned(), |d| d.to_string())
        )]),
    };
    if mode == Mode::Apply {
        aws.logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(retention_days)
            .send()
            .await
            .on(&resource, "logs:PutRetentionPolicy")?;
    }
    Ok(change)
}

pub async fn remove(aws: &Aws, names: &Names, name: &str, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(name);
    Found::of(read(aws, names, name).await?, |live| live.tagged)
        .remove(mode, async |_| {
            aws.logs.delete_log_group().log_group_name(name).send().await.or_missing(
                &["ResourceNotFoundException"],
                &resource,
                "logs:DeleteLogGroup",
            )?;
            Ok(())
        })
        .await
}

pub async fn observe(aws: &Aws, names: &Names, name: &str) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names, name).await?, |live| live.tagged)
        .observe(|live| Observed::present(None, live.retention.map_or_else(|| "kept forever".to_owned(), |d| format!("kept {d} days")))))
}
