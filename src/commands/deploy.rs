//! `ivsctl deploy`: every resource of the stack in dependency order (the order of
//! [`crate::stack::inventory`]): read it, diff it against what the stack wants and apply the
//! difference, or with `--dry-run` only plan it. The Lambda, its rule and its permission exist
//! before the service starts its first task, so no task's RUNNING event is lost.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::json;

use super::{Target, Wait};
use crate::aws::{self, Aws};
use crate::image::{Artifact, Image, read_static};
use crate::stack::autoscaling::{Bounds, CpuPolicy, ScalableTarget, TargetCpu};
use crate::stack::channel::{Channel, ChannelSpec, IvsChannel};
use crate::stack::function::{Function, FunctionSpec, Permission};
use crate::stack::function_url::{FunctionUrl, InvokeAction, PublicInvoke};
use crate::stack::iam::{Role, RoleSpec};
use crate::stack::log_group::{LogGroup, Retention};
use crate::stack::network::{GroupSpec, SecurityGroup};
use crate::stack::parameter::{self, Kind, Parameter, Wanted};
use crate::stack::repository::{EcrRepository, Repository};
use crate::stack::resource::{Resource, converge};
use crate::stack::rule::{Rule, RuleSpec};
use crate::stack::service::{RelayService, ServiceSpec};
use crate::stack::table::Table;
use crate::stack::task_definition::{self, FargateSize, TaskFamily, TaskSpec};
use crate::stack::template::{
    self, ECS_TASKS_TRUST, EXECUTION_ROLE_POLICY, FRONT_DOOR_ROLE_POLICY, LAMBDA_ROLE_POLICY, LAMBDA_TRUST, TASK_ROLE_POLICY,
};
use crate::stack::{Change, Mode, Names, cluster, image as stack_image, linked_role, network, service};
use crate::ui::Ui;

/// What `deploy` was asked to do, checked.
pub struct Settings {
    pub mode: Mode,
    /// Relay tasks to run; `None` keeps an existing service's count (1 for a new one).
    pub tasks: Option<u16>,
    /// Scaling on load; `None` keeps whatever an earlier deploy set (or none).
    pub autoscaling: Option<Autoscaling>,
    pub relay: RelaySource,
    /// The registry endpoint to push to instead of the one ECR names (emulators).
    pub registry_url: Option<String>,
    pub size: FargateSize,
    pub udp_port: u16,
    pub stun: Vec<String>,
    pub log_retention_days: i32,
    pub vpc: Option<String>,
    pub subnets: Vec<String>,
    pub channel: ChannelChoice,
    pub extra_destinations: ExtraDestinations,
    pub rotate_token: bool,
    /// A new relay TLS key pair even if one exists.
    pub rotate_relay_cert: bool,
    pub lambda_bootstrap: Option<PathBuf>,
    pub wait: Wait,
}

/// The relay's destinations besides the IVS channel.
pub enum ExtraDestinations {
    /// Whatever an earlier deploy set (or none).
    Keep,
    /// Exactly these (none: remove them).
    Set(Vec<ivs_relay::destination::Secret>),
}

/// The relay's destination variables, in the order the relay reads them (`ivs-relay --help`).
const DESTINATION_VARIABLES: [&str; parameter::MAX_DESTINATIONS] =
    ["IVS_RELAY_DESTINATION", "IVS_RELAY_DESTINATION_2", "IVS_RELAY_DESTINATION_3", "IVS_RELAY_DESTINATION_4", "IVS_RELAY_DESTINATION_5"];

/// Autoscaling of the relay service.
pub struct Autoscaling {
    pub bounds: Bounds,
    pub target_cpu: TargetCpu,
}

/// Where the relay image comes from.
pub enum RelaySource {
    /// `--image`: the user's, run as given.
    Image(String),
    /// Ours, made from the static relay binary (default: where `cargo static` puts it).
    Binary(Option<PathBuf>),
}

/// Whether the stack uses an IVS channel, and which.
pub enum ChannelChoice {
    /// The one an earlier deploy recorded, if any (kept with this spec).
    Recorded(ChannelSpec),
    /// The recorded one, or a new one.
    Create(ChannelSpec),
    /// This existing channel, never changed or deleted.
    Adopt(String),
}

/// The port the relays serve HTTPS on (unprivileged: no capability needed to bind it).
pub const RELAY_HTTPS_PORT: u16 = 8443;

/// The image the relay task runs.
enum RelayImage {
    Given(String),
    Build(Image),
}

pub async fn run(target: &Target, settings: Settings) -> anyhow::Result<()> {
    let mode = settings.mode;
    // Everything that can fail locally fails before the first AWS call.
    let lambda_zip = lambda_package(settings.lambda_bootstrap.clone())?;
    let relay_image = match &settings.relay {
        RelaySource::Image(uri) => RelayImage::Given(uri.clone()),
        RelaySource::Binary(path) => RelayImage::Build(Image::of_file(&static_binary_path(path.clone(), "ivs-relay")?, settings.udp_port)?),
    };
    let aws = Aws::connect(&target.connection).await?;
    // And what AWS can refuse up front, before the first write.
    if matches!(settings.channel, ChannelChoice::Create(_) | ChannelChoice::Adopt(_)) {
        let regions = aws::ivs_regions(&aws).await?;
        if !regions.contains(&aws.region) {
            bail!("Amazon IVS does not run in {}: deploy there without --ivs, or choose one of {}", aws.region, regions.join(", "));
        }
    }
    let names = Names::new(&target.stack);
    let ui = Ui::new(target.json, mode);
    if !target.json {
        let what = if mode == Mode::DryRun { "plan for" } else { "deploying" };
        println!("ivsctl: {what} stack {} in {} (account {})", names.stack, aws.region, aws.account);
    }
    let deploy = Deploy { aws: &aws, names: &names, ui: &ui, mode };

    let placement = network::placement(&aws, settings.vpc.as_deref(), &settings.subnets).await?;
    let repository = deploy.step(&EcrRepository(&names), &()).await?;
    for name in [&names.relay_log_group, &names.lambda_log_group, &names.front_door_log_group] {
        deploy.step(&LogGroup { names: &names, name }, &Retention(settings.log_retention_days)).await?;
    }
    deploy.step(&Table(&names), &()).await?;
    let secrets = deploy.secrets(&settings).await?;

    let [execution_spec, task_spec, lambda_spec, front_door_spec] = roles(&aws, &names, &repository, &secrets.parameter_arns());
    let execution_role = deploy.step(&Role { names: &names, name: &names.execution_role }, &execution_spec).await?;
    let task_role = deploy.step(&Role { names: &names, name: &names.task_role }, &task_spec).await?;
    let lambda_role = deploy.step(&Role { names: &names, name: &names.lambda_role }, &lambda_spec).await?;
    let front_door_role = deploy.step(&Role { names: &names, name: &names.front_door_role }, &front_door_spec).await?;
    deploy.step(&linked_role::EcsLinkedRole, &()).await?;

    // Tasks still running the current revision listen on its media port until they are replaced.
    let in_use_udp = task_definition::live_udp_port(&aws, &names).await?.filter(|port| *port != settings.udp_port);
    let group = SecurityGroup { names: &names, vpc: Some(&placement.vpc_id) };
    let group_spec = GroupSpec { vpc_id: placement.vpc_id.clone(), udp_port: settings.udp_port, in_use_udp };
    let security_group = deploy.step(&group, &group_spec).await?;
    let cluster_arn = deploy.step(&cluster::Cluster(&names), &()).await?;

    let image = match relay_image {
        RelayImage::Given(uri) => uri,
        RelayImage::Build(relay) => {
            let push = stack_image::ensure(&aws, &repository, &relay, settings.registry_url.as_deref(), mode);
            ui.step(stack_image::label(&relay), push).await?
        }
    };
    let task = TaskSpec {
        image: &image,
        size: settings.size,
        udp_port: settings.udp_port,
        stun: &settings.stun,
        execution_role_arn: &execution_role,
        task_role_arn: &task_role,
        environment: secrets
            .playback_url
            .iter()
            .map(|url| ("IVS_RELAY_PLAYBACK_URL", url.clone()))
            .chain([("IVS_RELAY_TLS_CERT_PEM", secrets.relay_cert.clone())])
            .collect(),
        secrets: secrets.task_secrets.clone(),
    };
    let task_definition = deploy.step(&TaskFamily(&names), &task_definition::Desired::new(&aws, &names, &task)).await?;

    let table = || ("REGISTRY_TABLE".to_owned(), names.table.clone());
    let registry = FunctionSpec {
        zip: lambda_zip.clone(),
        role_arn: lambda_role,
        environment: HashMap::from([table(), ("CLUSTER".to_owned(), cluster_arn.clone())]),
        timeout_seconds: 10,
    };
    let function_arn = deploy.step(&Function::registry(&names), &registry).await?;
    let rule_arn = deploy.step(&Rule(&names), &RuleSpec { cluster_arn, function_arn }).await?;
    deploy.step(&Permission(&names), &rule_arn).await?;

    let mut front_door_environment = HashMap::from([
        table(),
        ("RELAY_CERT".to_owned(), secrets.relay_cert.clone()),
        ("RELAY_PORT".to_owned(), RELAY_HTTPS_PORT.to_string()),
    ]);
    front_door_environment.extend(secrets.playback_url.clone().map(|url| ("PLAYBACK_URL".to_owned(), url)));
    // Long enough to try every relay in turn when some do not answer.
    let front_door = FunctionSpec { zip: lambda_zip, role_arn: front_door_role, environment: front_door_environment, timeout_seconds: 30 };
    deploy.step(&Function::front_door(&names), &front_door).await?;
    let url = deploy.step(&FunctionUrl(&names), &()).await?;
    for action in [InvokeAction::Url, InvokeAction::Function] {
        deploy.step(&PublicInvoke { names: &names, action }, &()).await?;
    }

    let service = ServiceSpec {
        task_definition: task_definition.clone(),
        desired_count: settings.tasks.map(i32::from),
        subnets: placement.subnets.clone(),
        security_group,
    };
    let relay_service = RelayService(&names);
    let service_change = ui.step(relay_service.label(), deploy.converge(&relay_service, &service)).await?;
    if let Some(scaling) = &settings.autoscaling {
        deploy.step(&ScalableTarget(&names), &scaling.bounds).await?;
        deploy.step(&CpuPolicy(&names), &scaling.target_cpu).await?;
    }

    let mut extra = json!({ "stack": names.stack.to_string(), "region": aws.region });
    if let Some(url) = &url {
        let urls = FrontDoorUrls::new(url);
        if !target.json {
            println!("web app: {}\nWHIP (OBS): {}", urls.web_app, urls.whip);
        }
        extra["web_app"] = json!(urls.web_app);
        extra["whip"] = json!(urls.whip);
    }
    if let (Mode::Apply, true, Wait::Until(timeout), Some(registered)) = (mode, service_change.writes(), settings.wait, &task_definition) {
        let bar = ui.spinner("waiting for the relay tasks");
        let state = service::wait_for_rollout(&aws, &names, registered, timeout, &bar).await;
        bar.finish_and_clear();
        let state = state.context("the stack is deployed but its relay tasks did not come up")?;
        extra["service"] = json!(state);
        if let Some(port) = in_use_udp {
            let label = format!("{} (old media port)", group.label());
            ui.step(label, network::retire_media_port(&aws, &group, port)).await?;
        }
    }
    ui.finish("deploy", extra);
    Ok(())
}

/// One deploy's context: every step reads, diffs, and applies or plans through it.
struct Deploy<'a> {
    aws: &'a Aws,
    names: &'a Names,
    ui: &'a Ui,
    mode: Mode,
}

impl Deploy<'_> {
    /// A step whose change is what later steps need (the service's: whether to wait for it).
    async fn converge<R: Resource>(&self, resource: &R, desired: &R::Desired) -> Result<(Change, Change), crate::error::AwsError> {
        let (change, _) = converge(self.aws, self.names, self.mode, resource, desired).await?;
        Ok((change.clone(), change))
    }

    /// One resource's line: converge it, print what changed, return what later steps need.
    async fn step<R: Resource>(&self, resource: &R, desired: &R::Desired) -> Result<R::Output, crate::error::AwsError> {
        self.ui.step(resource.label(), converge(self.aws, self.names, self.mode, resource, desired)).await
    }

    /// The WHIP token, the relays' key and the relay's destinations (the IVS channel's when the
    /// stack uses IVS, then the extra ones): each an SSM parameter the task reads at start.
    async fn secrets(&self, settings: &Settings) -> anyhow::Result<Secrets> {
        let (aws, names) = (self.aws, self.names);
        let token = parameter::new_token();
        let wanted = if settings.rotate_token { Wanted::Replace(token) } else { Wanted::Keep(Some(token)) };
        self.step(&Parameter { names, kind: Kind::Token }, &wanted).await?;
        let relay_cert = self.relay_certificate(settings.rotate_relay_cert).await?;
        let mut task_secrets =
            vec![("IVS_RELAY_TOKEN", Kind::Token.arn(aws, names)), ("IVS_RELAY_TLS_KEY_PEM", Kind::RelayKey.arn(aws, names))];
        let ivs = self.ivs_destination(&settings.channel).await?;
        let extra = self.extra_destinations(&settings.extra_destinations, ivs.is_some()).await?;
        let destinations = ivs.is_some().then(|| Kind::Destination.arn(aws, names)).into_iter().chain(extra);
        task_secrets.extend(DESTINATION_VARIABLES.into_iter().zip(destinations));
        Ok(Secrets { task_secrets, playback_url: ivs.and_then(|i| i.playback_url), relay_cert })
    }

    /// The stack's IVS channel and its destination parameter, if the stack uses IVS.
    async fn ivs_destination(&self, choice: &ChannelChoice) -> anyhow::Result<Option<IvsDestination>> {
        let (aws, names) = (self.aws, self.names);
        let recorded = parameter::value(aws, names, Kind::Channel).await?;
        let channel = match choice {
            ChannelChoice::Recorded(_) if recorded.is_none() => return Ok(None),
            ChannelChoice::Recorded(spec) | ChannelChoice::Create(spec) => {
                self.step(&IvsChannel { names, arn: recorded.as_deref() }, spec).await?
            }
            ChannelChoice::Adopt(arn) => Some(self.adopt(arn).await?),
        };
        let arn = channel.as_ref().map(|c| c.arn.clone());
        self.step(&Parameter { names, kind: Kind::Channel }, &arn.map_or(Wanted::Unknown, Wanted::Value)).await?;

        // A new channel comes with its key; otherwise the key is read back only when the
        // destination must be written: lost, or pointing at another channel than recorded.
        let same_channel = recorded.is_some() && recorded == channel.as_ref().map(|c| c.arn.clone());
        let has_destination = parameter::value(aws, names, Kind::Destination).await?.is_some();
        let destination = match &channel {
            None => Wanted::Unknown,
            Some(c) if c.stream_key.is_some() => Wanted::Value(c.destination().unwrap_or_default()),
            Some(_) if same_channel && has_destination => Wanted::Keep(None),
            Some(c) => {
                let key = crate::stack::channel::stream_key(aws, c).await?;
                Wanted::Value(Channel { stream_key: Some(key), ..c.clone() }.destination().unwrap_or_default())
            }
        };
        self.step(&Parameter { names, kind: Kind::Destination }, &destination).await?;
        Ok(Some(IvsDestination { playback_url: channel.map(|c| c.playback_url) }))
    }

    /// The extra destinations' parameters, numbered from 1: kept as they are, or made exactly
    /// the given ones (those beyond removed). Returns their ARNs in order.
    async fn extra_destinations(&self, choice: &ExtraDestinations, with_ivs: bool) -> anyhow::Result<Vec<String>> {
        let (aws, names) = (self.aws, self.names);
        let existing = parameter::extra_destinations(aws, names).await?;
        let wanted: Vec<(u8, Wanted)> = match choice {
            ExtraDestinations::Keep => existing.iter().map(|&n| (n, Wanted::Keep(None))).collect(),
            ExtraDestinations::Set(urls) => (1..).zip(urls.iter().map(|url| Wanted::Value(url.expose().to_owned()))).collect(),
        };
        let total = usize::from(with_ivs) + wanted.len();
        if total > parameter::MAX_DESTINATIONS {
            bail!(
                "{} extra destinations{} make {total}, but a relay publishes a stream to at most {}: give fewer --extra-destination",
                wanted.len(),
                if with_ivs { " and the IVS channel's" } else { "" },
                parameter::MAX_DESTINATIONS
            );
        }
        for (n, value) in &wanted {
            self.step(&Parameter { names, kind: Kind::ExtraDestination(*n) }, value).await?;
        }
        for n in existing.into_iter().filter(|n| !wanted.iter().any(|(w, _)| w == n)) {
            let parameter = Parameter { names, kind: Kind::ExtraDestination(n) };
            self.ui.step(parameter.label(), crate::stack::resource::remove(aws, self.mode, &parameter)).await?;
        }
        Ok(wanted.iter().map(|(n, _)| Kind::ExtraDestination(*n).arn(aws, names)).collect())
    }

    /// The relays' TLS key pair: kept once made, new with `--rotate-relay-cert` (or when either
    /// half is gone). Returns the certificate, which the task and the front door both get.
    async fn relay_certificate(&self, rotate: bool) -> anyhow::Result<String> {
        let (aws, names) = (self.aws, self.names);
        let cert = parameter::value(aws, names, Kind::RelayCert).await?;
        let key = parameter::value(aws, names, Kind::RelayKey).await?;
        let (cert, cert_wanted, key_wanted) = match (cert, key) {
            (Some(cert), Some(_)) if !rotate => (cert, Wanted::Keep(None), Wanted::Keep(None)),
            _ => {
                let (cert, key) = parameter::new_relay_certificate(names)?;
                (cert.clone(), Wanted::Replace(cert), Wanted::Replace(key))
            }
        };
        self.step(&Parameter { names, kind: Kind::RelayCert }, &cert_wanted).await?;
        self.step(&Parameter { names, kind: Kind::RelayKey }, &key_wanted).await?;
        Ok(cert)
    }

    /// `--ivs-channel`: someone else's channel, used as it is.
    async fn adopt(&self, arn: &str) -> anyhow::Result<Channel> {
        let resource = IvsChannel { names: self.names, arn: Some(arn) };
        let Some(live) = resource.read(self.aws).await? else {
            bail!("IVS channel {arn}: ivs:GetChannel found no such channel in {}: check --ivs-channel", self.aws.region);
        };
        let adopted = async { Ok((Change::NoOp, live.channel)) };
        Ok(self.ui.step(format!("{} (adopted)", resource.label()), adopted).await?)
    }
}

/// A stack that publishes to its IVS channel.
struct IvsDestination {
    /// `None` in a dry run that would create the channel.
    playback_url: Option<String>,
}

/// What the relay task gets from SSM, and the channel's playback URL.
struct Secrets {
    /// Variable name → parameter ARN.
    task_secrets: Vec<(&'static str, String)>,
    playback_url: Option<String>,
    /// The relays' certificate (PEM), which the front door pins.
    relay_cert: String,
}

/// Where people go live: the page, and the endpoint OBS and other WHIP clients take.
pub struct FrontDoorUrls {
    pub web_app: String,
    pub whip: String,
}

impl FrontDoorUrls {
    pub fn new(function_url: &str) -> Self {
        let base = function_url.trim_end_matches('/');
        Self { web_app: format!("{base}/"), whip: format!("{base}/whip/<stream>") }
    }
}

impl Secrets {
    fn parameter_arns(&self) -> Vec<String> {
        self.task_secrets.iter().map(|(_, arn)| arn.clone()).collect()
    }
}

/// The four roles (relay execution, relay task, registry function, front door function), with
/// their policies scoped to this stack's resources.
fn roles(aws: &Aws, names: &Names, repository: &Repository, secret_arns: &[String]) -> [RoleSpec; 4] {
    let account = [("account", json!(aws.account))];
    let log_group_arn = |name: &str| aws.arn("logs", &format!("log-group:{name}"));
    [
        RoleSpec {
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
        RoleSpec {
            trust: template::render(ECS_TASKS_TRUST, &account),
            policy: Some(template::render(TASK_ROLE_POLICY, &[("tasks_arn", json!(aws.arn("ecs", &format!("task/{}/*", names.cluster))))])),
        },
        RoleSpec {
            trust: template::render(LAMBDA_TRUST, &account),
            policy: Some(template::render(
                LAMBDA_ROLE_POLICY,
                &[
                    ("table_arn", json!(aws.arn("dynamodb", &format!("table/{}", names.table)))),
                    ("lambda_log_group_arn", json!(log_group_arn(&names.lambda_log_group))),
                ],
            )),
        },
        RoleSpec {
            trust: template::render(LAMBDA_TRUST, &account),
            policy: Some(template::render(
                FRONT_DOOR_ROLE_POLICY,
                &[
                    ("table_arn", json!(aws.arn("dynamodb", &format!("table/{}", names.table)))),
                    ("log_group_arn", json!(log_group_arn(&names.front_door_log_group))),
                ],
            )),
        },
    ]
}

/// Where `cargo static` puts `binary` for the profile this ivsctl was built with:
/// `target/x86_64-unknown-linux-gnu/<profile>/` beside `target/<profile>/ivsctl`.
fn static_binary_path(given: Option<PathBuf>, binary: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let exe = std::env::current_exe().context("cannot find where ivsctl runs from")?;
    let profile_dir = exe.parent().context("ivsctl has no directory")?;
    let (Some(profile), Some(target_dir)) = (profile_dir.file_name(), profile_dir.parent()) else {
        bail!("cannot tell where {binary} is from {}: pass its path", exe.display());
    };
    Ok(target_dir.join("x86_64-unknown-linux-gnu").join(profile).join(binary))
}

/// The Lambda's deployment zip, from the static `bootstrap` (`cargo static` puts it beside the
/// static relay). A dynamic one would be refused by provided.al2023's older glibc at start-up,
/// leaving the registry empty with nothing said.
fn lambda_package(given: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    let binary = read_static(Artifact::LambdaBootstrap, &static_binary_path(given, "bootstrap")?)?;
    Ok(ivs_ip_register::package::bootstrap_zip(&binary)?)
}
