//! CloudWatch log groups: the relay's (awslogs driver) and the Lambda's, each with the stack's
//! retention so logs don't pile up forever.

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;

/// The retention periods CloudWatch Logs accepts.
pub const RETENTION_DAYS: &[i32] =
    &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// One of the stack's log groups.
pub struct LogGroup<'a> {
    pub names: &'a Names,
    pub name: &'a str,
}

pub struct Live {
    tagged: bool,
    retention: Option<i32>,
}

/// How many days the group keeps its events.
pub struct Retention(pub i32);

impl LogGroup<'_> {
    async fn put_retention(&self, aws: &Aws, days: i32) -> Result<(), AwsError> {
        aws.logs
            .put_retention_policy()
            .log_group_name(self.name)
            .retention_in_days(days)
            .send()
            .await
            .on(&self.label(), op!("logs:PutRetentionPolicy"))?;
        Ok(())
    }
}

impl Resource for LogGroup<'_> {
    type Live = Live;
    type Desired = Retention;
    type Output = ();

    fn label(&self) -> String {
        format!("log group {}", self.name)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let resource = self.label();
        let found =
            aws.logs.describe_log_groups().log_group_name_prefix(self.name).send().await.on(&resource, op!("logs:DescribeLogGroups"))?;
        let Some(group) = found.log_groups().iter().find(|g| g.log_group_name() == Some(self.name)) else { return Ok(None) };
        let arn = aws.arn("logs", &format!("log-group:{}", self.name));
        let tags = aws.logs.list_tags_for_resource().resource_arn(&arn).send().await.on(&resource, op!("logs:ListTagsForResource"))?;
        let tagged = tags.tags().and_then(|t| t.get(TAG_KEY)).is_some_and(|v| v == self.names.tag_value());
        Ok(Some(Live { tagged, retention: group.retention_in_days() }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    fn diff(&self, desired: &Retention, live: &Live) -> Action {
        if live.retention == Some(desired.0) {
            return Action::NoOp;
        }
        let now = live.retention.map_or_else(|| "never expire".to_owned(), |d| d.to_string());
        Action::Update(vec![format!("retention {now} → {} days", desired.0)])
    }

    fn output(&self, _: &Aws, _: &Retention, _: Option<&Live>) {}

    async fn create(&self, aws: &Aws, desired: &Retention) -> Result<(), AwsError> {
        aws.logs
            .create_log_group()
            .log_group_name(self.name)
            .tags(TAG_KEY, self.names.tag_value())
            .send()
            .await
            .on(&self.label(), op!("logs:CreateLogGroup"))?;
        self.put_retention(aws, desired.0).await
    }

    async fn update(&self, aws: &Aws, desired: &Retention, _: &Live) -> Result<(), AwsError> {
        self.put_retention(aws, desired.0).await
    }

    async fn delete(&self, aws: &Aws, _: Live) -> Result<(), AwsError> {
        aws.logs.delete_log_group().log_group_name(self.name).send().await.or_missing(
            &["ResourceNotFoundException"],
            &self.label(),
            op!("logs:DeleteLogGroup"),
        )?;
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        Observed::present(None, live.retention.map_or_else(|| "kept forever".to_owned(), |d| format!("kept {d} days")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_different_retention_is_an_update() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let group = LogGroup { names: &names, name: "/ivsctl/ivs/relay" };
        assert_eq!(group.diff(&Retention(30), &Live { tagged: true, retention: Some(30) }), Action::NoOp);
        assert_eq!(
            group.diff(&Retention(7), &Live { tagged: true, retention: None }),
            Action::Update(vec!["retention never expire → 7 days".into()])
        );
    }
}
