//! The relay registry: a DynamoDB table, on-demand, keyed by task ARN, whose `expires_at`
//! attribute (the Lambda's tombstones of stopped tasks) DynamoDB's TTL removes.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Tag, TimeToLiveSpecification, TimeToLiveStatus,
};
use ivs_ip_register::registry::KEY;

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;
use crate::wait::{PROPAGATION, retrying};

pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The stack's registry table.
pub struct Table<'a>(pub &'a Names);

/// Time to live as DynamoDB reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// On (or turning on) for the registry's attribute.
    On,
    Off,
    /// Being switched off (by hand): DynamoDB refuses any TTL change until it is `Off`, which
    /// takes up to an hour.
    Disabling,
}

pub struct Live {
    tagged: bool,
    status: String,
    key: Vec<String>,
    on_demand: bool,
    ttl: Ttl,
}

fn wanted_key() -> String {
    format!("{KEY} (HASH)")
}

fn invalid(resource: &str, operation: &'static str, e: impl std::fmt::Display) -> AwsError {
    AwsError::new(resource, operation, "InvalidRequest", e.to_string())
}

impl Table<'_> {
    async fn enable_ttl(&self, aws: &Aws) -> Result<(), AwsError> {
        let resource = self.label();
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .map_err(|e| invalid(&resource, op!("dynamodb:UpdateTimeToLive"), e))?;
        // A new table is CREATING for a few seconds and refuses TTL changes until ACTIVE.
        retrying(&["ResourceInUseException"], PROPAGATION, || {
            aws.dynamodb.update_time_to_live().table_name(&self.0.table).time_to_live_specification(spec.clone()).send()
        })
        .await
        .on(&resource, op!("dynamodb:UpdateTimeToLive"))?;
        Ok(())
    }
}

impl Resource for Table<'_> {
    type Live = Live;
    type Desired = ();
    type Output = ();

    fn label(&self) -> String {
        format!("DynamoDB table {}", self.0.table)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let resource = self.label();
        let name = &self.0.table;
        let Some(found) = aws.dynamodb.describe_table().table_name(name).send().await.or_missing(
            &["ResourceNotFoundException"],
            &resource,
            op!("dynamodb:DescribeTable"),
        )?
        else {
            return Ok(None);
        };
        let Some(table) = found.table() else { return Ok(None) };
        let arn = table.table_arn().unwrap_or_default();
        let tags = aws.dynamodb.list_tags_of_resource().resource_arn(arn).send().await.on(&resource, op!("dynamodb:ListTagsOfResource"))?;
        let ttl = aws.dynamodb.describe_time_to_live().table_name(name).send().await.on(&resource, op!("dynamodb:DescribeTimeToLive"))?;
        let ttl = ttl.time_to_live_description().map_or(Ttl::Off, |d| match d.time_to_live_status() {
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) if d.attribute_name() == Some(TTL_ATTRIBUTE) => Ttl::On,
            Some(TimeToLiveStatus::Disabling) => Ttl::Disabling,
            _ => Ttl::Off,
        });
        Ok(Some(Live {
            tagged: super::tagged(tags.tags().iter().map(|t| (t.key(), t.value())), self.0),
            status: table.table_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            key: table.key_schema().iter().map(|k| format!("{} ({})", k.attribute_name(), k.key_type().as_str())).collect(),
            on_demand: table.billing_mode_summary().and_then(|b| b.billing_mode()) == Some(&BillingMode::PayPerRequest),
            ttl,
        }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    fn diff(&self, (): &(), live: &Live) -> Action {
        let wanted = wanted_key();
        if live.key != [wanted.clone()] {
            // The registry only caches what ECS knows: the Lambda refills a new table, and
            // `status` reads ECS for what is missing meanwhile.
            return Action::Replace(format!("keyed by {} instead of {wanted}, which cannot change in place", live.key.join(", ")));
        }
        let mut differences = Vec::new();
        if !live.on_demand {
            differences.push("billing mode → on-demand".to_owned());
        }
        match live.ttl {
            Ttl::On => {}
            Ttl::Off => differences.push(format!("time to live on {TTL_ATTRIBUTE}")),
            Ttl::Disabling if differences.is_empty() => return Action::Defer(disabling_reason()),
            Ttl::Disabling => differences.push(disabling_reason()),
        }
        Action::update_if(differences)
    }

    fn output(&self, _: &Aws, (): &(), _: Option<&Live>) {}

    async fn create(&self, aws: &Aws, (): &()) -> Result<(), AwsError> {
        let resource = self.label();
        let invalid = |e| invalid(&resource, op!("dynamodb:CreateTable"), e);
        let key_attribute =
            AttributeDefinition::builder().attribute_name(KEY).attribute_type(ScalarAttributeType::S).build().map_err(invalid)?;
        let key = KeySchemaElement::builder().attribute_name(KEY).key_type(KeyType::Hash).build().map_err(invalid)?;
        let tag = Tag::builder().key(TAG_KEY).value(self.0.tag_value()).build().map_err(invalid)?;
        aws.dynamodb
            .create_table()
            .table_name(&self.0.table)
            .attribute_definitions(key_attribute)
            .key_schema(key)
            .billing_mode(BillingMode::PayPerRequest)
            .tags(tag)
            .send()
            .await
            .on(&resource, op!("dynamodb:CreateTable"))?;
        self.enable_ttl(aws).await
    }

    async fn update(&self, aws: &Aws, (): &(), live: &Live) -> Result<(), AwsError> {
        if !live.on_demand {
            aws.dynamodb
                .update_table()
                .table_name(&self.0.table)
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .on(&self.label(), op!("dynamodb:UpdateTable"))?;
        }
        if live.ttl == Ttl::Off {
            self.enable_ttl(aws).await?;
        }
        Ok(())
    }

    async fn delete(&self, aws: &Aws, _: Live) -> Result<(), AwsError> {
        aws.dynamodb.delete_table().table_name(&self.0.table).send().await.or_missing(
            &["ResourceNotFoundException"],
            &self.label(),
            op!("dynamodb:DeleteTable"),
        )?;
        // A table is DELETING for a while, and a replacement with its name is refused until it is gone.
        let deadline = tokio::time::Instant::now() + PROPAGATION;
        while tokio::time::Instant::now() < deadline {
            let described = aws.dynamodb.describe_table().table_name(&self.0.table).send().await;
            if described.or_missing(&["ResourceNotFoundException"], &self.label(), op!("dynamodb:DescribeTable"))?.is_none() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        let billing = if live.on_demand { "on-demand" } else { "provisioned" };
        let ttl = match live.ttl {
            Ttl::On => "TTL on",
            Ttl::Off => "TTL off",
            Ttl::Disabling => "TTL turning off",
        };
        Observed::present(None, format!("{}, {billing}, {ttl}", live.status))
    }
}

fn disabling_reason() -> String {
    format!(
        "time to live on {TTL_ATTRIBUTE}: DynamoDB is still switching it off (done by hand) and refuses changes until it is off, up to an hour; a later deploy turns it on"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ttl: Ttl, on_demand: bool) -> Live {
        Live { tagged: true, status: "ACTIVE".into(), key: vec![wanted_key()], on_demand, ttl }
    }

    #[test]
    fn ttl_switched_off_by_hand_is_turned_on_but_one_still_switching_off_is_deferred() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let table = Table(&names);
        assert_eq!(table.diff(&(), &live(Ttl::On, true)), Action::NoOp);
        assert_eq!(table.diff(&(), &live(Ttl::Off, true)), Action::Update(vec!["time to live on expires_at".into()]));
        let Action::Defer(reason) = table.diff(&(), &live(Ttl::Disabling, true)) else { panic!("deferred") };
        assert!(reason.contains("a later deploy turns it on"), "{reason}");
        // Other repairs still happen meanwhile, and the line says why TTL waits.
        let Action::Update(reasons) = table.diff(&(), &live(Ttl::Disabling, false)) else { panic!("updated") };
        assert_eq!(reasons[0], "billing mode → on-demand");
        assert!(reasons[1].contains("still switching it off"), "{reasons:?}");
    }

    #[test]
    fn a_table_with_another_key_is_replaced() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let wrong = Live { key: vec!["id (HASH)".into()], ..live(Ttl::On, true) };
        assert!(matches!(Table(&names).diff(&(), &wrong), Action::Replace(reason) if reason.contains("id (HASH)")));
    }
}
