//! The IAM permissions a deployer needs, and the least-privilege policy `ivsctl policy` prints.
//!
//! [`ACTIONS`] is the one list of AWS actions ivsctl performs, each with the resources of a stack
//! it acts on. Every call site names its action with [`op!`], which refuses to compile an action
//! missing here: the policy cannot fall behind the code. (The moto tests also compare the list
//! with every request a deploy, status, scale and teardown make.)

use serde_json::{Value, json};

use crate::stack::Names;

/// What an action acts on, as ARN patterns of one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// The action has no resource-level permissions (descriptions, lists, registry logins).
    Any,
    Roles,
    /// ECS's service-linked role, which a fresh account lacks.
    LinkedRole,
    Repository,
    LogGroups,
    Table,
    Parameters,
    /// AWS's public parameters on which service runs where.
    PublicParameters,
    /// IVS channels and stream keys: their ids are random, so they are scoped by tag.
    Channels,
    /// EC2 security groups (ids are random) and the VPC one is created in.
    SecurityGroups,
    Cluster,
    Service,
    Tasks,
    Function,
    Rule,
    /// Application Auto Scaling's targets (their ARNs hold random ids).
    ScalableTargets,
}

/// Every action ivsctl performs (or that AWS checks on its behalf: PassRole, tagging on create,
/// the registry API of an image push), with its scope.
pub const ACTIONS: &[(&str, Scope)] = &[
    ("sts:GetCallerIdentity", Scope::Any),
    ("ec2:DescribeVpcs", Scope::Any),
    ("ec2:DescribeSubnets", Scope::Any),
    ("ec2:DescribeSecurityGroups", Scope::Any),
    ("ec2:DescribeNetworkInterfaces", Scope::Any),
    ("ecr:GetAuthorizationToken", Scope::Any),
    ("ecs:DescribeTaskDefinition", Scope::Any),
    ("ecs:ListTaskDefinitions", Scope::Any),
    ("ecs:RegisterTaskDefinition", Scope::Any),
    ("ecs:DeregisterTaskDefinition", Scope::Any),
    ("iam:ListRoles", Scope::Any),
    ("iam:GetRole", Scope::Roles),
    ("iam:CreateRole", Scope::Roles),
    ("iam:TagRole", Scope::Roles),
    ("iam:DeleteRole", Scope::Roles),
    ("iam:GetRolePolicy", Scope::Roles),
    ("iam:PutRolePolicy", Scope::Roles),
    ("iam:DeleteRolePolicy", Scope::Roles),
    ("iam:ListRolePolicies", Scope::Roles),
    ("iam:UpdateAssumeRolePolicy", Scope::Roles),
    ("iam:PassRole", Scope::Roles),
    ("iam:CreateServiceLinkedRole", Scope::LinkedRole),
    ("ecr:DescribeRepositories", Scope::Repository),
    ("ecr:CreateRepository", Scope::Repository),
    ("ecr:DeleteRepository", Scope::Repository),
    ("ecr:TagResource", Scope::Repository),
    ("ecr:ListTagsForResource", Scope::Repository),
    ("ecr:ListImages", Scope::Repository),
    ("ecr:BatchGetImage", Scope::Repository),
    ("ecr:BatchCheckLayerAvailability", Scope::Repository),
    ("ecr:InitiateLayerUpload", Scope::Repository),
    ("ecr:UploadLayerPart", Scope::Repository),
    ("ecr:CompleteLayerUpload", Scope::Repository),
    ("ecr:PutImage", Scope::Repository),
    ("logs:DescribeLogGroups", Scope::Any),
    ("logs:CreateLogGroup", Scope::LogGroups),
    ("logs:DeleteLogGroup", Scope::LogGroups),
    ("logs:PutRetentionPolicy", Scope::LogGroups),
    ("logs:TagResource", Scope::LogGroups),
    ("logs:ListTagsForResource", Scope::LogGroups),
    ("dynamodb:DescribeTable", Scope::Table),
    ("dynamodb:CreateTable", Scope::Table),
    ("dynamodb:UpdateTable", Scope::Table),
    ("dynamodb:DeleteTable", Scope::Table),
    ("dynamodb:TagResource", Scope::Table),
    ("dynamodb:ListTagsOfResource", Scope::Table),
    ("dynamodb:DescribeTimeToLive", Scope::Table),
    ("dynamodb:UpdateTimeToLive", Scope::Table),
    ("dynamodb:Scan", Scope::Table),
    ("ssm:GetParameter", Scope::Parameters),
    ("ssm:PutParameter", Scope::Parameters),
    ("ssm:DeleteParameter", Scope::Parameters),
    ("ssm:AddTagsToResource", Scope::Parameters),
    ("ssm:ListTagsForResource", Scope::Parameters),
    ("ssm:GetParametersByPath", Scope::PublicParameters),
    ("ivs:CreateChannel", Scope::Channels),
    ("ivs:GetChannel", Scope::Channels),
    ("ivs:ListChannels", Scope::Any),
    ("ivs:UpdateChannel", Scope::Channels),
    ("ivs:DeleteChannel", Scope::Channels),
    ("ivs:StopStream", Scope::Channels),
    ("ivs:ListStreamKeys", Scope::Channels),
    ("ivs:GetStreamKey", Scope::Channels),
    ("ivs:TagResource", Scope::Channels),
    ("ec2:CreateSecurityGroup", Scope::SecurityGroups),
    ("ec2:CreateTags", Scope::SecurityGroups),
    ("ec2:AuthorizeSecurityGroupIngress", Scope::SecurityGroups),
    ("ec2:RevokeSecurityGroupIngress", Scope::SecurityGroups),
    ("ec2:DeleteSecurityGroup", Scope::SecurityGroups),
    ("ecs:DescribeClusters", Scope::Cluster),
    ("ecs:CreateCluster", Scope::Cluster),
    ("ecs:DeleteCluster", Scope::Cluster),
    ("ecs:TagResource", Scope::Cluster),
    ("ecs:DescribeServices", Scope::Service),
    ("ecs:CreateService", Scope::Service),
    ("ecs:UpdateService", Scope::Service),
    ("ecs:DeleteService", Scope::Service),
    ("ecs:TagResource", Scope::Service),
    ("ecs:ListTasks", Scope::Cluster),
    ("ecs:DescribeTasks", Scope::Tasks),
    ("lambda:GetFunction", Scope::Function),
    ("lambda:CreateFunction", Scope::Function),
    ("lambda:UpdateFunctionCode", Scope::Function),
    ("lambda:UpdateFunctionConfiguration", Scope::Function),
    ("lambda:DeleteFunction", Scope::Function),
    ("lambda:TagResource", Scope::Function),
    ("lambda:GetPolicy", Scope::Function),
    ("lambda:AddPermission", Scope::Function),
    ("lambda:RemovePermission", Scope::Function),
    ("lambda:GetFunctionUrlConfig", Scope::Function),
    ("lambda:CreateFunctionUrlConfig", Scope::Function),
    ("lambda:UpdateFunctionUrlConfig", Scope::Function),
    ("lambda:DeleteFunctionUrlConfig", Scope::Function),
    ("events:DescribeRule", Scope::Rule),
    ("events:PutRule", Scope::Rule),
    ("events:DeleteRule", Scope::Rule),
    ("events:TagResource", Scope::Rule),
    ("events:ListTagsForResource", Scope::Rule),
    ("events:ListTargetsByRule", Scope::Rule),
    ("events:PutTargets", Scope::Rule),
    ("events:RemoveTargets", Scope::Rule),
    ("application-autoscaling:DescribeScalableTargets", Scope::Any),
    ("application-autoscaling:DescribeScalingPolicies", Scope::Any),
    ("application-autoscaling:RegisterScalableTarget", Scope::ScalableTargets),
    ("application-autoscaling:DeregisterScalableTarget", Scope::ScalableTargets),
    ("application-autoscaling:PutScalingPolicy", Scope::ScalableTargets),
    ("application-autoscaling:DeleteScalingPolicy", Scope::ScalableTargets),
    ("application-autoscaling:TagResource", Scope::ScalableTargets),
];

/// Whether `action` is in [`ACTIONS`]; a `const fn`, so [`op!`] can check at compile time.
pub const fn listed(action: &str) -> bool {
    let mut i = 0;
    while i < ACTIONS.len() {
        if same(ACTIONS[i].0.as_bytes(), action.as_bytes()) {
            return true;
        }
        i += 1;
    }
    false
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// An AWS action name (`"ecs:CreateService"`), checked at compile time to be in [`ACTIONS`].
#[macro_export]
macro_rules! op {
    ($action:literal) => {{
        const _: () = assert!($crate::permissions::listed($action), concat!($action, " is not in permissions::ACTIONS"));
        $action
    }};
}

/// Where the policy applies: `*` for what is not given.
pub struct Target<'a> {
    pub names: &'a Names,
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
}

impl Target<'_> {
    fn arn(&self, service: &str, resource: &str) -> String {
        let region = if service == "iam" { "" } else { self.region };
        format!("arn:{}:{service}:{region}:{}:{resource}", self.partition, self.account)
    }

    fn resources(&self, scope: Scope) -> Vec<String> {
        let n = self.names;
        let stack = &n.stack;
        match scope {
            Scope::Any => vec!["*".to_owned()],
            Scope::Roles => [&n.execution_role, &n.task_role, &n.lambda_role, &n.front_door_role]
                .iter()
                .map(|r| self.arn("iam", &format!("role/{r}")))
                .collect(),
            // ECS's, and the one Application Auto Scaling makes for itself on the first
            // RegisterScalableTarget of an ECS service.
            Scope::LinkedRole => vec![
                self.arn("iam", "role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"),
                self.arn(
                    "iam",
                    "role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService",
                ),
            ],
            Scope::Repository => vec![self.arn("ecr", &format!("repository/{}", n.repository))],
            Scope::LogGroups => [&n.relay_log_group, &n.lambda_log_group, &n.front_door_log_group]
                .iter()
                .flat_map(|g| [self.arn("logs", &format!("log-group:{g}")), self.arn("logs", &format!("log-group:{g}:*"))])
                .collect(),
            Scope::Table => vec![self.arn("dynamodb", &format!("table/{}", n.table))],
            Scope::Parameters => vec![self.arn("ssm", &format!("parameter/ivsctl/{stack}/*"))],
            Scope::PublicParameters => {
                vec![format!("arn:{}:ssm:{}::parameter/aws/service/global-infrastructure/*", self.partition, self.region)]
            }
            Scope::Channels => vec![self.arn("ivs", "channel/*"), self.arn("ivs", "stream-key/*")],
            Scope::SecurityGroups => vec![self.arn("ec2", "security-group/*"), self.arn("ec2", "vpc/*")],
            Scope::Cluster => vec![self.arn("ecs", &format!("cluster/{}", n.cluster))],
            Scope::Service => vec![self.arn("ecs", &format!("service/{}/{}", n.cluster, n.service))],
            Scope::Tasks => vec![self.arn("ecs", &format!("task/{}/*", n.cluster))],
            Scope::Function => [&n.function, &n.front_door].iter().map(|f| self.arn("lambda", &format!("function:{f}"))).collect(),
            Scope::Rule => vec![self.arn("events", &format!("rule/{}", n.rule))],
            Scope::ScalableTargets => vec![self.arn("application-autoscaling", "scalable-target/*")],
        }
    }

    /// Conditions that narrow a statement further than its ARNs can.
    fn condition(&self, scope: Scope) -> Option<Value> {
        match scope {
            Scope::LinkedRole => Some(json!({ "StringEquals": { "iam:AWSServiceName": [
                crate::stack::linked_role::SERVICE,
                "ecs.application-autoscaling.amazonaws.com"
            ] } })),
            _ => None,
        }
    }
}

/// The policy document a deployer of `target`'s stack needs: one statement per scope, plus
/// PassRole limited to the two services the roles are for.
pub fn policy(target: &Target) -> Value {
    let mut scopes: Vec<Scope> = ACTIONS.iter().map(|(_, scope)| *scope).collect();
    scopes.sort();
    scopes.dedup();
    let statements: Vec<Value> = scopes
        .into_iter()
        .map(|scope| {
            let mut actions: Vec<&str> =
                ACTIONS.iter().filter(|(action, s)| *s == scope && *action != "iam:PassRole").map(|(action, _)| *action).collect();
            actions.sort_unstable();
            let mut statement = json!({
                "Sid": format!("{scope:?}"),
                "Effect": "Allow",
                "Action": actions,
                "Resource": target.resources(scope),
            });
            if let Some(condition) = target.condition(scope) {
                statement["Condition"] = condition;
            }
            statement
        })
        .chain(std::iter::once(json!({
            "Sid": "PassRoles",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": target.resources(Scope::Roles),
            "Condition": { "StringEquals": { "iam:PassedToService": ["ecs-tasks.amazonaws.com", "lambda.amazonaws.com"] } },
        })))
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_every_action_once_per_scope_and_scopes_it_to_the_stack() {
        let names = Names::new(&"demo".parse().expect("name"));
        let policy = policy(&Target { names: &names, partition: "aws", region: "eu-west-1", account: "111122223333" });
        let statements = policy["Statement"].as_array().expect("statements");
        let granted: Vec<&str> =
            statements.iter().flat_map(|s| s["Action"].as_array().into_iter().flatten()).filter_map(Value::as_str).collect();
        for (action, _) in ACTIONS {
            assert!(granted.contains(action), "{action} granted");
        }
        let text = policy.to_string();
        assert!(text.contains("arn:aws:ecs:eu-west-1:111122223333:service/demo/demo-relay"), "{text}");
        assert!(text.contains("arn:aws:iam::111122223333:role/demo-relay-execution"), "{text}");
        let pass = statements.iter().find(|s| s["Sid"] == "PassRoles").expect("PassRole");
        assert_eq!(pass["Resource"].as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn listed_is_exact() {
        assert!(listed("ecs:CreateService"));
        assert!(!listed("ecs:CreateServic"));
        assert!(!listed("ecs:CreateServices"));
    }
}
