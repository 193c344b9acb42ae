//! The relay registry: a DynamoDB table, on-demand, keyed by task ARN, whose `expires_at`
//! attribute (the Lambda's tombstones of stopped tasks) DynamoDB's TTL removes.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Tag, TimeToLiveSpecification, TimeToLiveStatus,
};
use ivs_ip_register::registry::KEY;

use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

pub const TTL_ATTRIBUTE: &str = "expires_at";

struct LiveTable {
    tagged: bool,
    status: String,
    key: Vec<String>,
    on_demand: bool,
    ttl: bool,
}

fn label(names: &Names) -> String {
    format!("DynamoDB table {}", names.table)
}

fn invalid(resource: &str, operation: &'static str, e: impl std::fmt::Display) -> AwsError {
    AwsError::new(resource, operation, "InvalidRequest", e.to_string())
}

async fn read(aws: &Aws, names: &Names) -> Result<Option<LiveTable>, AwsError> {
    let resource = label(names);
    let Some(found) = aws.dynamodb.describe_table().table_name(&names.table).send().await.or_missing(
        &["ResourceNotFoundException"],
        &resource,
        "dynamodb:DescribeTable",
    )?
    else {
        return Ok(None);
    };
    let Some(table) = found.table() else { return Ok(None) };
    let arn = table.table_arn().unwrap_or_default();
    let tags = aws.dynamodb.list_tags_of_resource().resource_arn(arn).send().await.on(&resource, "dynamodb:ListTagsOfResource")?;
    let tagged = super::tagged(tags.tags().iter().map(|t| (t.key(), t.value())), names);
    let ttl = aws.dynamodb.describe_time_to_live().table_name(&names.table).send().await.on(&resource, "dynamodb:DescribeTimeToLive")?;
    let ttl = ttl.time_to_live_description().is_some_and(|d| {
        matches!(d.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling))
            && d.attribute_name() == Some(TTL_ATTRIBUTE)
    });
    Ok(Some(LiveTable {
        tagged,
        status: table.table_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        key: table.key_schema().iter().map(|k| format!("{} ({})", k.attribute_name(), k.key_type().as_str())).collect(),
        on_demand: table.billing_mode_summary().and_then(|b| b.billing_mode()) == Some(&BillingMode::PayPerRequest),
        ttl,
    }))
}

pub async fn ensure(aws: &Aws, names: &Names, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    let wanted_key = format!("{KEY} (HASH)");
    let (change, needs_ttl) = match read(aws, names).await? {
        None => {
            if mode == Mode::Apply {
                let key_attribute = AttributeDefinition::builder()
                    .attribute_name(KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| invalid(&resource, "dynamodb:CreateTable", e))?;
                let key = KeySchemaElement::builder()
                    .attribute_name(KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| invalid(&resource, "dynamodb:CreateTable", e))?;
                let tag = Tag::builder()
                    .key(TAG_KEY)
                    .value(names.tag_value())
                    .build()
                    .map_err(|e| invalid(&resource, "dynamodb:CreateTable", e))?;
                aws.dynamodb
                    .create_table()
                    .table_name(&names.table)
                    .attribute_definitions(key_attribute)
                    .key_schema(key)
                    .billing_mode(BillingMode::PayPerRequest)
                    .tags(tag)
                    .send()
                    .await
                    .on(&resource, "dynamodb:CreateTable")?;
            }
            (Change::Created, true)
        }
        Some(live) if !live.tagged => return Err(not_ours(&resource, &names.stack)),
        Some(live) if live.key != [wanted_key.clone()] => {
            return Err(AwsError::new(
                &resource,
                "key schema check",
                "KeySchemaMismatch",
                format!(
                    "the table is keyed by {} but the registry needs {wanted_key}; a key cannot change in place: run `ivsctl teardown` and deploy again",
                    live.key.join(", ")
                ),
            ));
        }
        Some(live) => {
            let mut differences = Vec::new();
            if !live.on_demand {
                differences.push("billing mode → on-demand".to_owned());
                if mode == Mode::Apply {
                    aws.dynamodb
                        .update_table()
                        .table_name(&names.table)
                        .billing_mode(BillingMode::PayPerRequest)
                        .send()
                        .await
                        .on(&resource, "dynamodb:UpdateTable")?;
                }
            }
            if !live.ttl {
                differences.push(format!("time to live on {TTL_ATTRIBUTE}"));
            }
            (Change::from_differences(differences), !live.ttl)
        }
    };
    if needs_ttl && mode == Mode::Apply {
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .map_err(|e| invalid(&resource, "dynamodb:UpdateTimeToLive", e))?;
        // A new table is CREATING for a few seconds and refuses TTL changes until ACTIVE.
        crate::wait::retrying(&["ResourceInUseException"], crate::wait::PROPAGATION, || {
            aws.dynamodb.update_time_to_live().table_name(&names.table).time_to_live_specification(spec.clone()).send()
        })
        .await
        .on(&resource, "dynamodb:UpdateTimeToLive")?;
    }
    Ok(change)
}

pub async fn remove(aws: &Aws, names: &Names, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    Found::of(read(aws, names).await?, |live| live.tagged)
        .remove(mode, async |_| {
            aws.dynamodb.delete_table().table_name(&names.table).send().await.or_missing(
                &["ResourceNotFoundException"],
                &resource,
                "dynamodb:DeleteTable",
            )?;
            Ok(())
        })
        .await
}

pub async fn observe(aws: &Aws, names: &Names) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names).await?, |live| live.tagged).observe(|live| {
        let billing = if live.on_demand { "on-demand" } else { "provisioned" };
        Observed::present(None, format!("{}, {billing}, {}", live.status, if live.ttl { "TTL on" } else { "TTL off" }))
    }))
}
