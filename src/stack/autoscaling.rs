//! Application Auto Scaling of the relay service: its bounds (a scalable target on the
//! service's desired count) and a target-tracking policy on the service's average CPU. Scale-in
//! never stops a relay with live sessions: each holds ECS task scale-in protection meanwhile.

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace, TargetTrackingScalingPolicyConfiguration,
};

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;

const NOT_FOUND: &[&str] = &["ObjectNotFoundException"];
/// Seconds between scaling in: a relay's load only falls as streams end, slowly.
const SCALE_IN_COOLDOWN: i32 = 300;
const SCALE_OUT_COOLDOWN: i32 = 60;

fn resource_id(names: &Names) -> String {
    format!("service/{}/{}", names.cluster, names.service)
}

/// How many relay tasks autoscaling may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: i32,
    pub max: i32,
}

impl Bounds {
    pub fn new(min: u16, max: u16) -> Result<Self, String> {
        if min > max {
            return Err(format!("--min-tasks {min} is above --max-tasks {max}"));
        }
        if max == 0 {
            return Err("--max-tasks must be at least 1".to_owned());
        }
        Ok(Self { min: i32::from(min), max: i32::from(max) })
    }

    pub fn contains(&self, tasks: i32) -> bool {
        (self.min..=self.max).contains(&tasks)
    }
}

impl std::fmt::Display for Bounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{} tasks", self.min, self.max)
    }
}

/// The service's scalable target.
pub struct ScalableTarget<'a>(pub &'a Names);

/// The bounds autoscaling keeps the service in now, if it is registered.
pub async fn bounds(aws: &Aws, names: &Names) -> Result<Option<Bounds>, AwsError> {
    ScalableTarget(names).read(aws).await
}

impl Resource for ScalableTarget<'_> {
    type Live = Bounds;
    type Desired = Bounds;
    type Output = ();

    fn label(&self) -> String {
        format!("autoscaling target {}", resource_id(self.0))
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Bounds>, AwsError> {
        let found = aws
            .autoscaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_ids(resource_id(self.0))
            .send()
            .await
            .on(&self.label(), op!("application-autoscaling:DescribeScalableTargets"))?;
        Ok(found.scalable_targets().first().map(|t| Bounds { min: t.min_capacity(), max: t.max_capacity() }))
    }

    /// It scales the stack's own service.
    fn is_ours(&self, _: &Bounds) -> bool {
        true
    }

    fn diff(&self, desired: &Bounds, live: &Bounds) -> Action {
        let mut differences = Vec::new();
        if desired.min != live.min {
            differences.push(format!("min {} → {}", live.min, desired.min));
        }
        if desired.max != live.max {
            differences.push(format!("max {} → {}", live.max, desired.max));
        }
        Action::update_if(differences)
    }

    fn output(&self, _: &Aws, _: &Bounds, _: Option<&Bounds>) {}

    async fn create(&self, aws: &Aws, desired: &Bounds) -> Result<(), AwsError> {
        self.register(aws, desired, true).await
    }

    async fn update(&self, aws: &Aws, desired: &Bounds, _: &Bounds) -> Result<(), AwsError> {
        self.register(aws, desired, false).await
    }

    async fn delete(&self, aws: &Aws, _: Bounds) -> Result<(), AwsError> {
        aws.autoscaling
            .deregister_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(resource_id(self.0))
            .send()
            .await
            .or_missing(NOT_FOUND, &self.label(), op!("application-autoscaling:DeregisterScalableTarget"))?;
        Ok(())
    }

    fn describe(&self, live: &Bounds) -> Observed {
        Observed::present(None, live.to_string())
    }
}

impl ScalableTarget<'_> {
    async fn register(&self, aws: &Aws, bounds: &Bounds, create: bool) -> Result<(), AwsError> {
        let request = aws
            .autoscaling
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(resource_id(self.0))
            .min_capacity(bounds.min)
            .max_capacity(bounds.max);
        let request = if create { request.tags(TAG_KEY, self.0.tag_value()) } else { request };
        request.send().await.on(&self.label(), op!("application-autoscaling:RegisterScalableTarget"))?;
        Ok(())
    }
}

/// Target tracking on the service's average CPU.
pub struct CpuPolicy<'a>(pub &'a Names);

/// The policy's target: average CPU, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetCpu(pub f64);

impl CpuPolicy<'_> {
    fn name(&self) -> String {
        format!("{}-relay-cpu", self.0.stack)
    }
}

impl Resource for CpuPolicy<'_> {
    type Live = TargetCpu;
    type Desired = TargetCpu;
    type Output = ();

    fn label(&self) -> String {
        format!("autoscaling policy {}", self.name())
    }

    async fn read(&self, aws: &Aws) -> Result<Option<TargetCpu>, AwsError> {
        let found = aws
            .autoscaling
            .describe_scaling_policies()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(resource_id(self.0))
            .policy_names(self.name())
            .send()
            .await
            .on(&self.label(), op!("application-autoscaling:DescribeScalingPolicies"))?;
        Ok(found
            .scaling_policies()
            .first()
            .map(|p| TargetCpu(p.target_tracking_scaling_policy_configuration().map_or(f64::NAN, |c| c.target_value()))))
    }

    fn is_ours(&self, _: &TargetCpu) -> bool {
        true
    }

    fn diff(&self, desired: &TargetCpu, live: &TargetCpu) -> Action {
        if (desired.0 - live.0).abs() < 0.05 {
            Action::NoOp
        } else {
            Action::Update(vec![format!("target CPU {} % → {} %", live.0, desired.0)])
        }
    }

    fn output(&self, _: &Aws, _: &TargetCpu, _: Option<&TargetCpu>) {}

    async fn create(&self, aws: &Aws, desired: &TargetCpu) -> Result<(), AwsError> {
        self.put(aws, desired).await
    }

    async fn update(&self, aws: &Aws, desired: &TargetCpu, _: &TargetCpu) -> Result<(), AwsError> {
        self.put(aws, desired).await
    }

    async fn delete(&self, aws: &Aws, _: TargetCpu) -> Result<(), AwsError> {
        aws.autoscaling
            .delete_scaling_policy()
            .policy_name(self.name())
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(resource_id(self.0))
            .send()
            .await
            .or_missing(NOT_FOUND, &self.label(), op!("application-autoscaling:DeleteScalingPolicy"))?;
        Ok(())
    }

    fn describe(&self, live: &TargetCpu) -> Observed {
        Observed::present(None, format!("average CPU {} %", live.0))
    }
}

impl CpuPolicy<'_> {
    async fn put(&self, aws: &Aws, target: &TargetCpu) -> Result<(), AwsError> {
        let invalid = |e: aws_sdk_applicationautoscaling::error::BuildError| {
            AwsError::new(self.label(), op!("application-autoscaling:PutScalingPolicy"), "InvalidRequest", e.to_string())
        };
        let configuration = TargetTrackingScalingPolicyConfiguration::builder()
            .target_value(target.0)
            .predefined_metric_specification(
                PredefinedMetricSpecification::builder()
                    .predefined_metric_type(MetricType::EcsServiceAverageCpuUtilization)
                    .build()
                    .map_err(invalid)?,
            )
            .scale_in_cooldown(SCALE_IN_COOLDOWN)
            .scale_out_cooldown(SCALE_OUT_COOLDOWN)
            .build()
            .map_err(invalid)?;
        aws.autoscaling
            .put_scaling_policy()
            .policy_name(self.name())
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(resource_id(self.0))
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(configuration)
            .send()
            .await
            .on(&self.label(), op!("application-autoscaling:PutScalingPolicy"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked_and_differences_named() {
        assert!(Bounds::new(3, 2).is_err());
        assert!(Bounds::new(0, 0).is_err());
        let names = Names::new(&"ivs".parse().expect("name"));
        let live = Bounds::new(1, 4).expect("valid");
        assert_eq!(ScalableTarget(&names).diff(&live, &live), Action::NoOp);
        let wanted = Bounds::new(2, 4).expect("valid");
        assert_eq!(ScalableTarget(&names).diff(&wanted, &live), Action::Update(vec!["min 1 → 2".into()]));
        assert_eq!(CpuPolicy(&names).diff(&TargetCpu(60.0), &TargetCpu(60.0)), Action::NoOp);
        assert!(matches!(CpuPolicy(&names).diff(&TargetCpu(50.0), &TargetCpu(60.0)), Action::Update(_)));
    }
}
