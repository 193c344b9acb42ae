//! The EventBridge rule that sends this cluster's ECS task state changes to the Lambda.

use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use serde_json::{Value, json};

use super::resource::{Action, Resource};
use super::template::{self, EVENT_PATTERN};
use super::{Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;

const TARGET_ID: &str = "ip-register";
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

/// The stack's rule.
pub struct Rule<'a>(pub &'a Names);

/// The rule as the stack wants it.
pub struct RuleSpec {
    pub cluster_arn: String,
    pub function_arn: String,
}

impl RuleSpec {
    fn pattern(&self) -> Value {
        template::render(EVENT_PATTERN, &[("cluster_arn", json!(self.cluster_arn))])
    }

    fn targets(&self) -> Vec<(String, String)> {
        vec![(TARGET_ID.to_owned(), self.function_arn.clone())]
    }
}

pub struct Live {
    arn: String,
    tagged: bool,
    pattern: Value,
    enabled: bool,
    /// (id, ARN) of each target.
    targets: Vec<(String, String)>,
}

pub fn arn(aws: &Aws, names: &Names) -> String {
    aws.arn("events", &format!("rule/{}", names.rule))
}

fn invalid(resource: &str, operation: &'static str, e: impl std::fmt::Display) -> AwsError {
    AwsError::new(resource, operation, "InvalidRequest", e.to_string())
}

impl Rule<'_> {
    async fn put_rule(&self, aws: &Aws, desired: &RuleSpec) -> Result<(), AwsError> {
        let resource = self.label();
        let tag =
            Tag::builder().key(TAG_KEY).value(self.0.tag_value()).build().map_err(|e| invalid(&resource, op!("events:PutRule"), e))?;
        aws.events
            .put_rule()
            .name(&self.0.rule)
            .description(format!("ivsctl stack {}: ECS task state changes of the relay cluster", self.0.stack))
            .event_pattern(desired.pattern().to_string())
            .state(RuleState::Enabled)
            .tags(tag)
            .send()
            .await
            .on(&resource, op!("events:PutRule"))?;
        Ok(())
    }

    async fn remove_targets(&self, aws: &Aws, ids: Vec<String>) -> Result<(), AwsError> {
        if !ids.is_empty() {
            aws.events
                .remove_targets()
                .rule(&self.0.rule)
                .set_ids(Some(ids))
                .send()
                .await
                .on(&self.label(), op!("events:RemoveTargets"))?;
        }
        Ok(())
    }

    async fn put_target(&self, aws: &Aws, desired: &RuleSpec) -> Result<(), AwsError> {
        let resource = self.label();
        let target = Target::builder()
            .id(TARGET_ID)
            .arn(&desired.function_arn)
            .build()
            .map_err(|e| invalid(&resource, op!("events:PutTargets"), e))?;
        aws.events.put_targets().rule(&self.0.rule).targets(target).send().await.on(&resource, op!("events:PutTargets"))?;
        Ok(())
    }
}

impl Resource for Rule<'_> {
    type Live = Live;
    type Desired = RuleSpec;
    /// The rule's ARN.
    type Output = String;

    fn label(&self) -> String {
        format!("EventBridge rule {}", self.0.rule)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let resource = self.label();
        let Some(rule) =
            aws.events.describe_rule().name(&self.0.rule).send().await.or_missing(NOT_FOUND, &resource, op!("events:DescribeRule"))?
        else {
            return Ok(None);
        };
        let arn = rule.arn().map_or_else(|| arn(aws, self.0), str::to_owned);
        let tags = aws.events.list_tags_for_resource().resource_arn(&arn).send().await.on(&resource, op!("events:ListTagsForResource"))?;
        let targets = aws.events.list_targets_by_rule().rule(&self.0.rule).send().await.on(&resource, op!("events:ListTargetsByRule"))?;
        Ok(Some(Live {
            arn,
            tagged: super::tagged(tags.tags().iter().map(|t| (t.key(), t.value())), self.0),
            pattern: rule.event_pattern().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null),
            enabled: rule.state() == Some(&RuleState::Enabled),
            targets: targets.targets().iter().map(|t| (t.id().to_owned(), t.arn().to_owned())).collect(),
        }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    fn diff(&self, desired: &RuleSpec, live: &Live) -> Action {
        let mut differences = Vec::new();
        if live.pattern != desired.pattern() {
            differences.push("event pattern".to_owned());
        }
        if !live.enabled {
            differences.push("state → ENABLED".to_owned());
        }
        if live.targets != desired.targets() {
            differences.push("targets".to_owned());
        }
        Action::update_if(differences)
    }

    fn output(&self, aws: &Aws, _: &RuleSpec, _: Option<&Live>) -> String {
        arn(aws, self.0)
    }

    async fn create(&self, aws: &Aws, desired: &RuleSpec) -> Result<String, AwsError> {
        self.put_rule(aws, desired).await?;
        self.put_target(aws, desired).await?;
        Ok(arn(aws, self.0))
    }

    async fn update(&self, aws: &Aws, desired: &RuleSpec, live: &Live) -> Result<String, AwsError> {
        if live.pattern != desired.pattern() || !live.enabled {
            self.put_rule(aws, desired).await?;
        }
        let wanted = desired.targets();
        if live.targets != wanted {
            self.remove_targets(aws, live.targets.iter().filter(|t| !wanted.contains(t)).map(|(id, _)| id.clone()).collect()).await?;
            self.put_target(aws, desired).await?;
        }
        Ok(arn(aws, self.0))
    }

    async fn delete(&self, aws: &Aws, live: Live) -> Result<(), AwsError> {
        self.remove_targets(aws, live.targets.into_iter().map(|(id, _)| id).collect()).await?;
        aws.events.delete_rule().name(&self.0.rule).send().await.or_missing(NOT_FOUND, &self.label(), op!("events:DeleteRule"))?;
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        let state = if live.enabled { "ENABLED" } else { "DISABLED" };
        Observed::present(Some(live.arn.clone()), format!("{state}, {} target(s)", live.targets.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_rule_with_a_foreign_target_is_repaired() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let spec = RuleSpec { cluster_arn: "arn:c".into(), function_arn: "arn:f".into() };
        let live = Live {
            arn: "arn:r".into(),
            tagged: true,
            pattern: spec.pattern(),
            enabled: false,
            targets: vec![("x".into(), "arn:other".into())],
        };
        assert_eq!(Rule(&names).diff(&spec, &live), Action::Update(vec!["state → ENABLED".into(), "targets".into()]));
        let fine = Live { enabled: true, targets: spec.targets(), ..live };
        assert_eq!(Rule(&names).diff(&spec, &fine), Action::NoOp);
    }
}
