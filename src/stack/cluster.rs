//! The ECS cluster the relay service runs in.

use aws_sdk_ecs::types::{ClusterField, Tag};

use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

struct LiveCluster {
    arn: String,
    tagged: bool,
    detail: String,
}

fn label(names: &Names) -> String {
    format!("ECS cluster {}", names.cluster)
}

pub fn arn(aws: &Aws, names: &Names) -> String {
    aws.arn("ecs", &format!("cluster/{}", names.cluster))
}

async fn read(aws: &Aws, names: &Names) -> Result<Option<LiveCluster>, AwsError> {
    let found = aws
        .ecs
        .describe_clusters()
        .clusters(&names.cluster)
        .include(ClusterField::Tags)
        .send()
        .await
        .on(&label(names), "ecs:DescribeClusters")?;
    // A deleted cluster lingers as INACTIVE for a while; it is gone for our purposes.
    let Some(cluster) = found.clusters().iter().find(|c| c.status() == Some("ACTIVE")) else { return Ok(None) };
    Ok(Some(LiveCluster {
        arn: cluster.cluster_arn().unwrap_or_default().to_owned(),
        tagged: super::tagged(cluster.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))), names),
        detail: format!("{} services, {} tasks running", cluster.active_services_count(), cluster.running_tasks_count()),
    }))
}

/// Creates the cluster if needed; returns its ARN.
pub async fn ensure(aws: &Aws, names: &Names, mode: Mode) -> Result<(Change, String), AwsError> {
    let resource = label(names);
    match read(aws, names).await? {
        Some(live) if !live.tagged => Err(not_ours(&resource, &names.stack)),
        Some(live) => Ok((Change::Unchanged, live.arn)),
        None if mode == Mode::DryRun => Ok((Change::Created, arn(aws, names))),
        None => {
            let created = aws
                .ecs
                .create_cluster()
                .cluster_name(&names.cluster)
                .tags(Tag::builder().key(TAG_KEY).value(names.tag_value()).build())
                .send()
                .await
                .on(&resource, "ecs:CreateCluster")?;
            let arn = created.cluster().and_then(|c| c.cluster_arn()).map_or_else(|| arn(aws, names), str::to_owned);
            Ok((Change::Created, arn))
        }
    }
}

/// Deletes the cluster once its service and tasks are gone (waits for them to drain).
pub async fn remove(aws: &Aws, names: &Names, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    Found::of(read(aws, names).await?, |live| live.tagged)
        .remove(mode, async |_| {
            crate::wait::retrying(
                &["ClusterContainsServicesException", "ClusterContainsTasksException", "UpdateInProgressException"],
                crate::wait::DRAIN,
                || aws.ecs.delete_cluster().cluster(&names.cluster).send(),
            )
            .await
            .or_missing(&["ClusterNotFoundException"], &resource, "ecs:DeleteCluster")?;
            Ok(())
        })
        .await
}

pub async fn observe(aws: &Aws, names: &Names) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names).await?, |live| live.tagged).observe(|live| Observed::present(Some(live.arn), live.detail)))
}
