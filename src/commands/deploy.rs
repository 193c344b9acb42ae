//! `ivsctl deploy`: walk the stack's resources in dependency order; for each, read the live
//! state, diff it against the desired one and apply the difference (or, with `--dry-run`, only
//! report it).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use crate::aws::Aws;
use crate::cli::{AwsArgs, DeployArgs};
use crate::image::Image;
use crate::stack::channel::{self, Channel, ChannelSpec};
use crate::stack::iam::RoleSpec;
use crate::stack::image as stack_image;
use crate::stack::parameter::{self, Kind, Wanted};
use crate::stack::task_definition::TaskSpec;
use crate::stack::template::{self, ECS_TASKS_TRUST, EXECUTION_ROLE_POLICY, LAMBDA_ROLE_POLICY, LAMBDA_TRUST};
use crate::stack::{Change, Mode, Names, cluster, function, iam, log_group, network, repository, rule, service, table, task_definition};
use crate::ui::Ui;

pub async fn run(global: &AwsArgs, args: DeployArgs) -> anyhow::Result<()> {
    let mode = if args.dry_run { Mode::DryRun } else { Mode::Apply };
    // Everything that can fail locally fails before the first AWS call.
    let lambda_zip = lambda_package(args.lambda_bootstrap.clone())?;
    let relay_image = match &args.image {
        Some(uri) => RelayImage::Given(uri.clone()),
        None => RelayImage::Build(Image::of_file(&relay_binary_path(args.relay_binary.clone())?, args.udp_port)?),
    };
    let aws = Aws::connect(global).await?;
    let names = Names::new(&global.stack);
    let ui = Ui::new(global.json, mode);
    if !global.json {
        let what = if mode == Mode::DryRun { "plan for" } else { "deploying" };
        println!("ivsctl: {what} stack {} in {} (account {})", names.stack, aws.region, aws.account);
    }

    let placement = network::placement(&aws, args.vpc.as_deref(), &args.subnets).await?;
    let repository = ui.step(format!("ECR repository {}", names.repository), repository::ensure(&aws, &names, mode)).await?;
    for group in [&names.relay_log_group, &names.lambda_log_group] {
        ui.step(format!("log group {group}"), log_group::ensure(&aws, &names, group, args.log_retention_days, mode)).await?;
    }
    ui.step(format!("DynamoDB table {}", names.table), table::ensure(&aws, &names, mode)).await?;
    let secrets = secrets(&aws, &names, &args, &ui, mode).await?;

    let [execution_role, task_role, lambda_role] = roles(&aws, &names, &repository, &secrets.parameter_arns());
    let execution_role_arn = ui.step(format!("IAM role {}", execution_role.name), iam::ensure(&aws, &names, &execution_role, mode)).await?;
    let task_role_arn = ui.step(format!("IAM role {}", task_role.name), iam::ensure(&aws, &names, &task_role, mode)).await?;
    let lambda_role_arn = ui.step(format!("IAM role {}", lambda_role.name), iam::ensure(&aws, &names, &lambda_role, mode)).await?;

    // Tasks still running the current revision listen on its media port until they are replaced.
    let old_udp_port = task_definition::live_udp_port(&aws, &names).await?.filter(|port| *port != args.udp_port);
    let security_group = ui
        .step(
            format!("security group {}", names.security_group),
            network::ensure_security_group(&aws, &names, &placement, args.udp_port, old_udp_port, mode),
        )
        .await?;
    let cluster_arn = ui.step(format!("ECS cluster {}", names.cluster), cluster::ensure(&aws, &names, mode)).await?;

    let image = match relay_image {
        RelayImage::Given(uri) => uri,
        RelayImage::Build(relay) => {
            ui.step(stack_image::label(&relay), stack_image::ensure(&aws, &repository, &relay, args.registry_url.as_deref(), mode)).await?
        }
    };
    let task = TaskSpec {
        image: &image,
        cpu: args.cpu,
        memory: args.memory,
        udp_port: args.udp_port,
        stun: &args.stun,
        execution_role_arn: &execution_role_arn,
        task_role_arn: &task_role_arn,
        environment: secrets.playback_url.iter().map(|url| ("IVS_RELAY_PLAYBACK_URL", url.clone())).collect(),
        secrets: secrets.task_secrets.clone(),
    };
    let task_definition_arn =
        ui.step(format!("task definition {}", names.task_family), task_definition::ensure(&aws, &names, &task, mode)).await?;
    let service = service::ServiceSpec {
        task_definition: &task_definition_arn,
        desired_count: args.tasks.map(i32::from),
        subnets: &placement.subnets,
        security_group: security_group.as_deref(),
    };
    let service_change = ui
        .step(format!("ECS service {}", names.service), async {
            let change = service::ensure(&aws, &names, &service, mode).await?;
            Ok((change.clone(), change))
        })
        .await?;

    let function = function::FunctionSpec { zip: &lambda_zip, role_arn: &lambda_role_arn, cluster_arn: &cluster_arn };
    let function_arn = ui.step(format!("Lambda function {}", names.function), function::ensure(&aws, &names, &function, mode)).await?;
    let rule_arn =
        ui.step(format!("EventBridge rule {}", names.rule), rule::ensure(&aws, &names, &cluster_arn, &function_arn, mode)).await?;
    ui.step(format!("invoke permission of {}", names.function), function::ensure_permission(&aws, &names, &rule_arn, mode)).await?;

    let mut extra = json!({ "stack": names.stack.to_string(), "region": aws.region });
    if mode == Mode::Apply && service_change != Change::Unchanged && !args.wait.no_wait {
        let desired = service::state(&aws, &names).await?.map_or(0, |s| s.desired);
        let bar = ui.spinner("waiting for the relay tasks");
        let state = service::wait_until_running(&aws, &names, desired, args.wait.timeout, &bar).await;
        bar.finish_and_clear();
        let state = state.context("the stack is deployed but its relay tasks did not come up")?;
        extra["service"] = json!(state);
        if let Some(port) = old_udp_port {
            let label = format!("security group {} (old media port)", names.security_group);
            ui.step(label, network::retire_media_port(&aws, &names, &placement, port, mode)).await?;
        }
    }
    ui.finish("deploy", extra);
    Ok(())
}

/// The image the relay task runs.
enum RelayImage {
    /// `--image`: the user's, run as given.
    Given(String),
    /// Ours, made from the static relay binary and pushed to the stack's repository.
    Build(Image),
}

/// What the relay task gets from SSM, and the channel's playback URL.
struct Secrets {
    /// Variable name → parameter ARN.
    task_secrets: Vec<(&'static str, String)>,
    playback_url: Option<String>,
}

impl Secrets {
    fn parameter_arns(&self) -> Vec<String> {
        self.task_secrets.iter().map(|(_, arn)| arn.clone()).collect()
    }
}

/// The WHIP token and, when the stack uses IVS, the channel and its destination: each an SSM
/// parameter the task reads at start.
async fn secrets(aws: &Aws, names: &Names, args: &DeployArgs, ui: &Ui, mode: Mode) -> anyhow::Result<Secrets> {
    let token = parameter::new_token();
    let first_token = || token.clone();
    let wanted = if args.rotate_token { Wanted::Replace(&token) } else { Wanted::Keep { make: &first_token } };
    ui.step(format!("SSM parameter {}", Kind::Token.name(names)), parameter::ensure(aws, names, Kind::Token, wanted, mode)).await?;
    let mut secrets = Secrets { task_secrets: vec![("IVS_RELAY_TOKEN", Kind::Token.arn(aws, names))], playback_url: None };

    let recorded = parameter::value(aws, names, Kind::Channel).await?;
    let channel_arn = args.ivs_channel.clone().or(recorded.clone());
    if !args.ivs && channel_arn.is_none() {
        return Ok(secrets);
    }
    let spec = ChannelSpec { channel_type: args.channel_type.clone(), latency_mode: args.latency_mode.clone() };
    let channel_label = format!("IVS channel {}", channel_arn.as_deref().unwrap_or(&names.stack.to_string()));
    let channel = ui.step(channel_label, channel::ensure(aws, names, channel_arn.as_deref(), &spec, mode)).await?;
    let arn = channel.as_ref().map_or_else(|| "(new channel)".to_owned(), |c| c.arn.clone());
    ui.step(
        format!("SSM parameter {}", Kind::Channel.name(names)),
        parameter::ensure(aws, names, Kind::Channel, Wanted::Value(&arn), mode),
    )
    .await?;

    // The stream key is known when the channel was just made; otherwise read it only when the
    // destination must be (re)written: missing, or the stack now uses another channel.
    let same_channel = recorded.as_deref() == Some(arn.as_str());
    let has_destination = parameter::value(aws, names, Kind::Destination).await?.is_some();
    let destination = match &channel {
        Some(c) if c.stream_key.is_some() => c.destination(),
        Some(c) if !(same_channel && has_destination) => {
            let key = channel::stream_key(aws, c).await?;
            Some(Channel { stream_key: Some(key), ..c.clone() }.destination().unwrap_or_default())
        }
        _ => None,
    };
    let placeholder = || "(from the new channel)".to_owned();
    let wanted = match &destination {
        Some(url) => Wanted::Value(url),
        None => Wanted::Keep { make: &placeholder },
    };
    ui.step(format!("SSM parameter {}", Kind::Destination.name(names)), parameter::ensure(aws, names, Kind::Destination, wanted, mode))
        .await?;
    secrets.task_secrets.push(("IVS_RELAY_DESTINATION", Kind::Destination.arn(aws, names)));
    secrets.playback_url = channel.map(|c| c.playback_url);
    Ok(secrets)
}

/// The three roles, with their policies scoped to this stack's resources.
fn roles(aws: &Aws, names: &Names, repository: &repository::Repository, secret_arns: &[String]) -> [RoleSpec; 3] {
    let account = [("account", json!(aws.account))];
    let log_group_arn = |name: &str| aws.arn("logs", &format!("log-group:{name}"));
    [
        RoleSpec {
            name: names.execution_role.clone(),
            trust: template::render(ECS_TASKS_TRUST, &account),
            policy: Some(template::render(
                EXECUTION_ROLE_POLICY,
                &[
                    ("repository_arn", json!(repository.arn)),
                    ("relay_log_group_arn", json!(log_group_arn(&names.relay_log_group))),
                    ("secret_parameter_arns", json!(secret_arns)),
                ],
            )),
        },
        RoleSpec { name: names.task_role.clone(), trust: template::render(ECS_TASKS_TRUST, &account), policy: None },
        RoleSpec {
            name: names.lambda_role.clone(),
            trust: template::render(LAMBDA_TRUST, &account),
            policy: Some(template::render(
                LAMBDA_ROLE_POLICY,
                &[
                    ("table_arn", json!(aws.arn("dynamodb", &format!("table/{}", names.table)))),
                    ("lambda_log_group_arn", json!(log_group_arn(&names.lambda_log_group))),
                ],
            )),
        },
    ]
}

/// Where `cargo relay-static` puts the relay for the profile this ivsctl was built with:
/// `target/x86_64-unknown-linux-gnu/<profile>/ivs-relay` beside `target/<profile>/ivsctl`.
fn relay_binary_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let exe = std::env::current_exe().context("cannot find where ivsctl runs from")?;
    let profile_dir = exe.parent().context("ivsctl has no directory")?;
    let (Some(profile), Some(target_dir)) = (profile_dir.file_name(), profile_dir.parent()) else {
        anyhow::bail!("cannot tell where the relay binary is from {}: pass --relay-binary", exe.display());
    };
    Ok(target_dir.join("x86_64-unknown-linux-gnu").join(profile).join("ivs-relay"))
}

/// The Lambda's deployment zip, from the `bootstrap` binary the workspace build puts next to
/// `ivsctl` (or the one given).
fn lambda_package(given: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe().context("cannot find where ivsctl runs from")?.with_file_name("bootstrap"),
    };
    let binary = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read the Lambda's bootstrap binary at {}: build it with `cargo build --release --workspace` (it lands next to ivsctl) or pass --lambda-bootstrap",
            path.display()
        )
    })?;
    Ok(ivs_ip_register::package::bootstrap_zip(&binary)?)
}
