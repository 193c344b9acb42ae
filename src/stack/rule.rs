//! The EventBridge rule that sends this cluster's ECS task state changes to the Lambda.

use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use serde_json::{Value, json};

use super::template::{self, EVENT_PATTERN};
use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

const TARGET_ID: &str = "ip-register";
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

fn label(names: &Names) -> String {
    format!("EventBridge rule {}", names.rule)
}

pub fn arn(aws: &Aws, names: &Names) -> String {
    aws.arn("events", &format!("rule/{}", names.rule))
}

pub fn pattern(cluster_arn: &str) -> Value {
    template::render(EVENT_PATTERN, &[("cluster_arn", json!(cluster_arn))])
}

struct LiveRule {
    tagged: bool,
    pattern: Value,
    enabled: bool,
    targets: Vec<(String, String)>,
}

fn invalid(resource: &str, operation: &'static str, e: impl std::fmt::Display) -> AwsError {
    AwsError::new(resource, operation, "InvalidRequest", e.to_string())
}

async fn read(aws: &Aws, names: &Names) -> Result<Option<LiveRule>, AwsError> {
    let resource = label(names);
    let Some(rule) = aws.events.describe_rule().name(&names.rule).send().await.or_missing(NOT_FOUND, &resource, "events:DescribeRule")?
    else {
        return Ok(None);
    };
    let arn = rule.arn().map_or_else(|| arn(aws, names), str::to_owned);
    let tags = aws.events.list_tags_for_resource().resource_arn(&arn).send().await.on(&resource, "events:ListTagsForResource")?;
    let targets = aws.events.list_targets_by_rule().rule(&names.rule).send().await.on(&resource, "events:ListTargetsByRule")?;
    Ok(Some(LiveRule {
        tagged: super::tagged(tags.tags().iter().map(|t| (t.key(), t.value())), names),
        pattern: rule.event_pattern().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null),
        enabled: rule.state() == Some(&RuleState::Enabled),
        targets: targets.targets().iter().map(|t| (t.id().to_owned(), t.arn().to_owned())).collect(),
    }))
}

/// Creates or repairs the rule and its one target, the function.
pub async fn ensure(aws: &Aws, names: &Names, cluster_arn: &str, function_arn: &str, mode: Mode) -> Result<(Change, String), AwsError> {
    let resource = label(names);
    let wanted_pattern = pattern(cluster_arn);
    let wanted_targets = vec![(TARGET_ID.to_owned(), function_arn.to_owned())];
    let (change, put_rule, stale_targets) = match read(aws, names).await? {
        None => (Change::Created, true, Vec::new()),
        Some(live) if !live.tagged => return Err(not_ours(&resource, &names.stack)),
        Some(live) => {
            let mut differences = Vec::new();
            if live.pattern != wanted_pattern {
                differences.push("event pattern".to_owned());
            }
            if !live.enabled {
                differences.push("state → ENABLED".to_owned());
            }
            let stale: Vec<String> = live.targets.iter().filter(|t| !wanted_targets.contains(t)).map(|(id, _)| id.clone()).collect();
            if live.targets != wanted_targets {
                differences.push("targets".to_owned());
            }
            let put_rule = differences.iter().any(|d| d != "targets");
            (Change::from_differences(differences), put_rule, stale)
        }
    };
    if mode == Mode::Apply && change != Change::Unchanged {
        if put_rule {
            let tag = Tag::builder().key(TAG_KEY).value(names.tag_value()).build().map_err(|e| invalid(&resource, "events:PutRule", e))?;
            aws.events
                .put_rule()
                .name(&names.rule)
                .description(format!("ivsctl stack {}: ECS task state changes of the relay cluster", names.stack))
                .event_pattern(wanted_pattern.to_string())
                .state(RuleState::Enabled)
                .tags(tag)
                .send()
                .await
                .on(&resource, "events:PutRule")?;
        }
        if !stale_targets.is_empty() {
            aws.events
                .remove_targets()
                .rule(&names.rule)
                .set_ids(Some(stale_targets))
                .send()
                .await
                .on(&resource, "events:RemoveTargets")?;
        }
        let target = Target::builder().id(TARGET_ID).arn(function_arn).build().map_err(|e| invalid(&resource, "events:PutTargets", e))?;
        aws.events.put_targets().rule(&names.rule).targets(target).send().await.on(&resource, "events:PutTargets")?;
    }
    Ok((change, arn(aws, names)))
}

pub async fn remove(aws: &Aws, names: &Names, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    Found::of(read(aws, names).await?, |live| live.tagged)
        .remove(mode, async |live| {
            if !live.targets.is_empty() {
                let ids = live.targets.into_iter().map(|(id, _)| id).collect();
                aws.events.remove_targets().rule(&names.rule).set_ids(Some(ids)).send().await.on(&resource, "events:RemoveTargets")?;
            }
            aws.events.delete_rule().name(&names.rule).send().await.or_missing(NOT_FOUND, &resource, "events:DeleteRule")?;
            Ok(())
        })
        .await
}

pub async fn observe(aws: &Aws, names: &Names) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names).await?, |live| live.tagged).observe(|live| {
        Observed::present(
            Some(arn(aws, names)),
            format!("{}, {} target(s)", if live.enabled { "ENABLED" } else { "DISABLED" }, live.targets.len()),
        )
    }))
}
