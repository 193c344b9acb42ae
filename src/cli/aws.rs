//! The AWS commands' command line (`deploy`, `status`, `scale`, `teardown`, `policy`) and its
//! resolution into each command's settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::commands::{self, Target, deploy};
use crate::stack::autoscaling::{Bounds, TargetCpu};
use crate::stack::channel::ChannelSpec;
use crate::stack::log_group::RETENTION_DAYS;
use crate::stack::task_definition::FargateSize;
use crate::stack::{Mode, StackName};

/// Which stack, where, and how to report (all commands but `local`).
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// Stack name: prefixes every resource name and tags every resource (`ivsctl:stack=NAME`).
    #[arg(long, global = true, env = "IVSCTL_STACK", default_value = "ivs")]
    pub stack: StackName,

    /// AWS region (else AWS_REGION or the profile's).
    #[arg(long, global = true)]
    pub region: Option<String>,

    /// Named profile from ~/.aws/config (else AWS_PROFILE).
    #[arg(long, global = true)]
    pub profile: Option<String>,

    /// Send every AWS call to this endpoint (an emulator such as moto).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,

    /// Print one JSON document instead of lines.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log what ivsctl does (-v) and the AWS calls it makes (-vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // Parsed once per run.
pub enum AwsCommand {
    /// Create the stack, or bring every resource of it back to what it should be.
    Deploy(DeployArgs),
    /// Show every resource of the stack, the service's tasks and the running relays.
    Status(StatusArgs),
    /// Set how many relay tasks run, and wait until they do.
    Scale(ScaleArgs),
    /// Delete every resource tagged with the stack's name, in dependency order.
    Teardown(TeardownArgs),
    /// Print the least-privilege IAM policy that deploy, status, scale and teardown of this stack
    /// need (attach it to the deployer's user or role).
    Policy(PolicyArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Print the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Relay tasks to run (default: 1 for a new service; an existing service keeps its count).
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub tasks: Option<u16>,

    /// Scale the relays on load: at least this many tasks (with --max-tasks; a later deploy
    /// without them keeps the bounds set before).
    #[arg(long, requires = "max_tasks", value_parser = clap::value_parser!(u16).range(0..=100))]
    pub min_tasks: Option<u16>,

    /// Scale the relays on load: at most this many tasks.
    #[arg(long, requires = "min_tasks", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub max_tasks: Option<u16>,

    /// The average CPU (percent) autoscaling keeps the relay tasks at.
    #[arg(long, default_value_t = 60.0, value_parser = target_cpu)]
    pub target_cpu: f64,

    /// Run this image (URI, ideally pinned by @sha256:…) instead of building and pushing one.
    #[arg(long, env = "IVSCTL_IMAGE", conflicts_with = "relay_binary")]
    pub image: Option<String>,

    /// The static relay binary the image is made of (default: where `cargo static` puts it
    /// for this ivsctl's build profile).
    #[arg(long, env = "IVSCTL_RELAY_BINARY")]
    pub relay_binary: Option<PathBuf>,

    /// Push the image to this registry endpoint instead of the one ECR names (for emulators, like
    /// --endpoint-url).
    #[arg(long, env = "IVSCTL_REGISTRY_URL", value_name = "URL")]
    pub registry_url: Option<String>,

    /// Task CPU units (256 = 0.25 vCPU).
    #[arg(long, default_value_t = 256)]
    pub cpu: u32,

    /// Task memory in MiB (must suit --cpu, as Fargate defines).
    #[arg(long, default_value_t = 512)]
    pub memory: u32,

    /// The UDP port all WebRTC media uses (opened in the security group).
    #[arg(long, default_value_t = 50000, value_parser = clap::value_parser!(u16).range(1024..))]
    pub udp_port: u16,

    /// STUN servers (host:port, repeatable or comma-separated) the relay learns its public
    /// address from, tried in turn until one answers.
    #[arg(long, value_delimiter = ',', default_value = "stun.l.google.com:19302,stun1.l.google.com:19302,stun.cloudflare.com:3478")]
    pub stun: Vec<String>,

    /// Days CloudWatch keeps the relay's and the Lambda's logs.
    #[arg(long, default_value_t = 30, value_parser = retention_days)]
    pub log_retention_days: i32,

    /// VPC to run in (default: the region's default VPC); needs --subnets.
    #[arg(long, requires = "subnets")]
    pub vpc: Option<String>,

    /// Subnets (with a route to the internet) for the tasks, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub subnets: Vec<String>,

    /// Create an Amazon IVS channel for the stack (later deploys keep it) and make it the relay's
    /// default destination; its stream key stays in SSM Parameter Store.
    #[arg(long)]
    pub ivs: bool,

    /// Use this existing IVS channel instead (ivsctl never changes or deletes it).
    #[arg(long, value_name = "ARN", conflicts_with = "ivs")]
    pub ivs_channel: Option<String>,

    /// Another RTMP(S) destination every stream also goes to, e.g.
    /// rtmps://live.twitch.tv:443/app/<key> (repeatable; kept in SSM Parameter Store as
    /// SecureString, as the IVS key is). Given, the stack's extra destinations become exactly
    /// these; left out, later deploys keep them.
    // Checked in `resolve`, not by clap, whose errors repeat the value (and so the key).
    #[arg(long = "extra-destination", value_name = "URL", conflicts_with = "no_extra_destinations")]
    pub extra_destinations: Vec<String>,

    /// Remove the stack's extra destinations.
    #[arg(long)]
    pub no_extra_destinations: bool,

    /// Type of a channel ivsctl creates.
    #[arg(long, default_value = "STANDARD", value_parser = ["STANDARD", "BASIC", "ADVANCED_SD", "ADVANCED_HD"])]
    pub channel_type: String,

    /// Latency mode of a channel ivsctl creates.
    #[arg(long, default_value = "LOW", value_parser = ["LOW", "NORMAL"])]
    pub latency_mode: String,

    /// Replace the stack's WHIP bearer token with a new one (running relays get it on their next start).
    #[arg(long)]
    pub rotate_token: bool,

    /// Make a new TLS key pair for the relays (the front door pins the new certificate; running
    /// relays are replaced by the rollout).
    #[arg(long)]
    pub rotate_relay_cert: bool,

    /// The Lambda's static `bootstrap` binary (default: where `cargo static` puts it, beside the relay).
    #[arg(long, env = "IVSCTL_LAMBDA_BOOTSTRAP")]
    pub lambda_bootstrap: Option<PathBuf>,

    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also print the WHIP bearer token web pages and clients must send.
    #[arg(long)]
    pub show_token: bool,

    /// Also print the IVS stream key (anyone with it can broadcast on the channel).
    #[arg(long)]
    pub show_stream_key: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Don't wait for the tasks to run.
    #[arg(long)]
    pub no_wait: bool,

    /// How long to wait for the tasks, e.g. 10m or 90s.
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// How many relay tasks should run.
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub tasks: u16,

    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// Don't ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,

    /// Show what would be deleted and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The account the policy is for (default: any, `*`).
    #[arg(long)]
    pub account: Option<String>,
}

impl AwsArgs {
    pub fn target(&self) -> Target {
        Target {
            stack: self.stack.clone(),
            connection: crate::aws::Settings {
                region: self.region.clone(),
                profile: self.profile.clone(),
                endpoint_url: self.endpoint_url.clone(),
            },
            json: self.json,
        }
    }
}

impl DeployArgs {
    /// The deploy's settings, or why these flags cannot work together.
    pub fn resolve(self) -> Result<deploy::Settings, String> {
        let size = FargateSize::new(self.cpu, self.memory)
            .map_err(|e| format!("--cpu {} --memory {}: {e} (see ivsctl deploy --help)", self.cpu, self.memory))?;
        let with_ivs = self.ivs || self.ivs_channel.is_some();
        let limit = crate::stack::parameter::MAX_DESTINATIONS - usize::from(with_ivs);
        if self.extra_destinations.len() > limit {
            return Err(format!(
                "{} --extra-destination given, but a relay publishes a stream to at most {} destinations{}",
                self.extra_destinations.len(),
                crate::stack::parameter::MAX_DESTINATIONS,
                if with_ivs { ", the IVS channel's included" } else { "" }
            ));
        }
        let extra_destinations = self
            .extra_destinations
            .iter()
            .enumerate()
            .map(|(n, url)| destination_url(url).map_err(|e| format!("--extra-destination #{}: {e}", n + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = ChannelSpec { channel_type: self.channel_type, latency_mode: self.latency_mode };
        let channel = match (self.ivs, self.ivs_channel) {
            (_, Some(arn)) => deploy::ChannelChoice::Adopt(arn),
            (true, None) => deploy::ChannelChoice::Create(spec),
            (false, None) => deploy::ChannelChoice::Recorded(spec),
        };
        let relay = match self.image {
            Some(uri) => deploy::RelaySource::Image(uri),
            None => deploy::RelaySource::Binary(self.relay_binary),
        };
        let autoscaling = match (self.min_tasks, self.max_tasks) {
            (Some(min), Some(max)) => Some(deploy::Autoscaling { bounds: Bounds::new(min, max)?, target_cpu: TargetCpu(self.target_cpu) }),
            _ => None,
        };
        if let (Some(tasks), Some(scaling)) = (self.tasks, &autoscaling)
            && !scaling.bounds.contains(i32::from(tasks))
        {
            return Err(format!("--tasks {tasks} is outside --min-tasks/--max-tasks ({})", scaling.bounds));
        }
        Ok(deploy::Settings {
            mode: if self.dry_run { Mode::DryRun } else { Mode::Apply },
            tasks: self.tasks,
            autoscaling,
            relay,
            registry_url: self.registry_url,
            size,
            udp_port: self.udp_port,
            stun: self.stun,
            log_retention_days: self.log_retention_days,
            vpc: self.vpc,
            subnets: self.subnets,
            channel,
            extra_destinations: match (self.no_extra_destinations, extra_destinations) {
                (true, _) => deploy::ExtraDestinations::Set(Vec::new()),
                (false, urls) if urls.is_empty() => deploy::ExtraDestinations::Keep,
                (false, urls) => deploy::ExtraDestinations::Set(urls),
            },
            rotate_token: self.rotate_token,
            rotate_relay_cert: self.rotate_relay_cert,
            lambda_bootstrap: self.lambda_bootstrap,
            wait: self.wait.resolve(),
        })
    }
}

impl WaitArgs {
    pub fn resolve(&self) -> commands::Wait {
        if self.no_wait { commands::Wait::No } else { commands::Wait::Until(self.timeout) }
    }
}

/// An `rtmp(s)://host/app/key` URL; the error never repeats it (it holds the key), nor does the
/// `Secret` it becomes.
fn destination_url(text: &str) -> Result<ivs_relay::destination::Secret, String> {
    use ivs_relay::destination::Destination;
    match Destination::parse_url(text.trim()) {
        Ok(Destination::Rtmp(_)) => Ok(ivs_relay::destination::Secret::new(text.trim())),
        Ok(Destination::File(_)) => Err("a deployed relay has no disk to record to: give an rtmp:// or rtmps:// URL".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn target_cpu(text: &str) -> Result<f64, String> {
    let percent: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (10.0..=90.0).contains(&percent) { Ok(percent) } else { Err("a CPU target is 10 to 90 (percent)".to_owned()) }
}

fn retention_days(text: &str) -> Result<i32, String> {
    let days: i32 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if RETENTION_DAYS.contains(&days) { Ok(days) } else { Err(format!("CloudWatch Logs keeps logs for one of {RETENTION_DAYS:?} days")) }
}

/// `90s`, `10m`, `1h`, or plain seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 90s or 10m"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: use s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

impl AwsArgs {
    /// How much to log: errors only, unless -v or -vv.
    pub fn log_filter(&self) -> &'static str {
        match self.verbose {
            0 => "error",
            1 => "warn,ivsctl=debug",
            _ => "info,ivsctl=debug,aws_smithy_runtime=debug",
        }
    }
}

/// Runs one AWS command.
pub async fn run(args: &AwsArgs, command: AwsCommand) -> anyhow::Result<()> {
    let target = args.target();
    match command {
        AwsCommand::Deploy(deploy_args) => commands::deploy::run(&target, deploy_args.resolve().map_err(anyhow::Error::msg)?).await,
        AwsCommand::Status(status) => {
            let settings = commands::status::Settings { show_token: status.show_token, show_stream_key: status.show_stream_key };
            commands::status::run(&target, settings).await
        }
        AwsCommand::Scale(scale) => commands::scale::run(&target, scale.tasks, scale.wait.resolve()).await,
        AwsCommand::Teardown(teardown) => {
            let mode = if teardown.dry_run { Mode::DryRun } else { Mode::Apply };
            commands::teardown::run(&target, commands::teardown::Settings { mode, confirmed: teardown.yes }).await
        }
        AwsCommand::Policy(policy) => commands::policy::run(&target, policy.account.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("2"), Ok(Duration::from_secs(2)));
        assert!(duration("5 parsecs").is_err());
        assert!(duration("m").is_err());
    }

    #[test]
    fn retentions_are_checked() {
        assert_eq!(retention_days("30"), Ok(30));
        assert!(retention_days("31").is_err());
    }
}
