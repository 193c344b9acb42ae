//! The ECS cluster the relay service runs in.

use aws_sdk_ecs::types::{ClusterField, Tag};

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;
use crate::stack::linked_role;
use crate::wait::{DRAIN, PROPAGATION, retrying, retrying_while};

/// The stack's cluster.
pub struct Cluster<'a>(pub &'a Names);

pub struct Live {
    arn: String,
    tagged: bool,
    detail: String,
}

pub fn arn(aws: &Aws, names: &Names) -> String {
    aws.arn("ecs", &format!("cluster/{}", names.cluster))
}

impl Resource for Cluster<'_> {
    type Live = Live;
    type Desired = ();
    /// The cluster's ARN.
    type Output = String;

    fn label(&self) -> String {
        format!("ECS cluster {}", self.0.cluster)
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let found = aws
            .ecs
            .describe_clusters()
            .clusters(&self.0.cluster)
            .include(ClusterField::Tags)
            .send()
            .await
            .on(&self.label(), op!("ecs:DescribeClusters"))?;
        // A deleted cluster lingers as INACTIVE for a while; it is gone for our purposes.
        let Some(cluster) = found.clusters().iter().find(|c| c.status() == Some("ACTIVE")) else { return Ok(None) };
        Ok(Some(Live {
            arn: cluster.cluster_arn().unwrap_or_default().to_owned(),
            tagged: super::tagged(cluster.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))), self.0),
            detail: format!("{} services, {} tasks running", cluster.active_services_count(), cluster.running_tasks_count()),
        }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    fn diff(&self, (): &(), _: &Live) -> Action {
        Action::NoOp
    }

    fn output(&self, aws: &Aws, (): &(), live: Option<&Live>) -> String {
        live.map_or_else(|| arn(aws, self.0), |l| l.arn.clone())
    }

    async fn create(&self, aws: &Aws, (): &()) -> Result<String, AwsError> {
        // On a fresh account ECS creates its service-linked role with the first cluster and
        // refuses for a while to use one made moments ago ("Unable to assume the service linked role").
        let created = retrying_while(linked_role::not_ready, PROPAGATION, || {
            aws.ecs
                .create_cluster()
                .cluster_name(&self.0.cluster)
                .tags(Tag::builder().key(TAG_KEY).value(self.0.tag_value()).build())
                .send()
        })
        .await
        .on(&self.label(), op!("ecs:CreateCluster"))?;
        Ok(created.cluster().and_then(|c| c.cluster_arn()).map_or_else(|| arn(aws, self.0), str::to_owned))
    }

    async fn update(&self, aws: &Aws, (): &(), live: &Live) -> Result<String, AwsError> {
        Ok(self.output(aws, &(), Some(live)))
    }

    /// Waits for the service and its tasks to drain first.
    async fn delete(&self, aws: &Aws, _: Live) -> Result<(), AwsError> {
        retrying(&["ClusterContainsServicesException", "ClusterContainsTasksException", "UpdateInProgressException"], DRAIN, || {
            aws.ecs.delete_cluster().cluster(&self.0.cluster).send()
        })
        .await
        .or_missing(&["ClusterNotFoundException"], &self.label(), op!("ecs:DeleteCluster"))?;
        Ok(())
    }

    fn describe(&self, live: &Live) -> Observed {
        Observed::present(Some(live.arn.clone()), live.detail.clone())
    }
}
