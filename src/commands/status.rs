//! `ivsctl status`: every resource of the stack, the service's tasks and deployments, and each
//! running relay from the registry with its health and session count.

use std::time::Duration;

use ivs_ip_register::registry::RelayEntry;
use serde::Serialize;

use ivs_ip_register::front_door::pinned::Deadlines;

use super::Target;
use super::deploy::{FrontDoorUrls, RELAY_HTTPS_PORT};
use crate::aws::Aws;
use crate::stack::function_url::FunctionUrl;
use crate::stack::parameter::{self, Kind};
use crate::stack::resource::Resource as _;
use crate::stack::service::{self, ServiceState};
use crate::stack::{Names, Observed, channel, inventory};

#[derive(Debug, Serialize)]
struct Report {
    stack: String,
    region: String,
    account: String,
    resources: Vec<Resource>,
    service: Option<ServiceState>,
    relays: Vec<Relay>,
    /// The front door: the web app, and the WHIP endpoint for OBS.
    web_app: Option<String>,
    whip: Option<String>,
    /// Where viewers watch the stack's IVS channel.
    playback_url: Option<String>,
    /// Only with --show-token.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// Only with --show-stream-key.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_key: Option<String>,
}

#[derive(Debug, Serialize)]
struct Resource {
    resource: String,
    #[serde(flatten)]
    observed: Observed,
}

/// A registered relay and what its `/healthz` said.
#[derive(Debug, Serialize)]
pub struct Relay {
    #[serde(flatten)]
    pub entry: RelayEntry,
    /// `ok`, `draining`, or why the probe failed.
    pub health: String,
    pub sessions: Option<u64>,
    /// Whether it holds ECS scale-in protection (it does while sessions are live).
    pub protected: Option<bool>,
}

/// What `status` was asked to show besides the stack.
pub struct Settings {
    /// The WHIP bearer token web pages and clients must send.
    pub show_token: bool,
    /// The IVS stream key (anyone with it can broadcast on the channel).
    pub show_stream_key: bool,
}

pub async fn run(target: &Target, settings: Settings) -> anyhow::Result<()> {
    let aws = Aws::connect(&target.connection).await?;
    let names = Names::new(&target.stack);
    let n = &names;
    let channel = channel::find(&aws, n).await?;
    let extra_destinations = parameter::extra_destinations(&aws, n).await?;
    let inventory = inventory(n, channel.as_deref(), &extra_destinations);
    let observed = futures_util::future::join_all(inventory.iter().map(|r| r.observe(&aws))).await;
    let mut resources = Vec::new();
    for (resource, observed) in inventory.iter().zip(observed) {
        resources.push(Resource { resource: resource.label(), observed: observed? });
    }
    let playback_url = match &channel {
        Some(arn) => channel::playback_url(&aws, n, arn).await?,
        None => None,
    };
    let stream_key = if settings.show_stream_key && channel.is_some() {
        let destination = parameter::value(&aws, n, Kind::Destination).await?.unwrap_or_default();
        destination.rsplit_once("/app/").map(|(_, key)| key.to_owned())
    } else {
        None
    };
    let token = if settings.show_token { parameter::value(&aws, n, Kind::Token).await? } else { None };
    let service = service::state(&aws, n).await?;
    let relays = if service.is_some() { relays(&aws, n).await? } else { Vec::new() };
    let urls = FunctionUrl(n).read(&aws).await?.map(|live| FrontDoorUrls::new(&live.url));
    let report = Report {
        stack: names.stack.to_string(),
        region: aws.region.clone(),
        account: aws.account.clone(),
        resources,
        service,
        relays,
        web_app: urls.as_ref().map(|u| u.web_app.clone()),
        whip: urls.map(|u| u.whip),
        playback_url,
        token,
        stream_key,
    };
    if target.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(())
}

/// The service's running relays, each probed at `/healthz`: those the registry lists, and those
/// ECS runs that the registry lacks (a lost or late event), found through their network interface.
pub async fn relays(aws: &Aws, names: &Names) -> anyhow::Result<Vec<Relay>> {
    let registry = ivs_ip_register::registry::Registry::new(aws.dynamodb.clone(), &names.table);
    let mut entries = match registry.running().await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the relay registry; listing the relays ECS runs");
            Vec::new()
        }
    };
    let network = ivs_ip_register::network::Network::new(aws.ec2.clone());
    for task in service::running_tasks(aws, names).await? {
        if entries.iter().any(|e| e.task_arn == task.task_arn) {
            continue;
        }
        let addresses = match &task.eni {
            Some(eni) => network.addresses(eni).await?.unwrap_or_default(),
            None => Default::default(),
        };
        entries.push(RelayEntry {
            task_arn: task.task_arn,
            public_ip: addresses.public_ip,
            private_ip: addresses.private_ip,
            availability_zone: task.availability_zone,
            started_at: task.started_at,
            revision: None,
            note: Some(NOT_REGISTERED.to_owned()),
        });
    }
    // Relays are trusted as the front door trusts them: by the stack's pinned certificate. A
    // stack deployed before relays had one still lists its relays, unprobed.
    let client = match parameter::value(aws, names, Kind::RelayCert).await? {
        Some(cert) => {
            let deadlines = Deadlines { connect: Duration::from_secs(2), total: Duration::from_secs(3) };
            Some(ivs_ip_register::front_door::pinned::client(&cert, deadlines)?)
        }
        None => None,
    };
    let mut probes = tokio::task::JoinSet::new();
    for entry in entries {
        let client = client.clone();
        probes.spawn(async move {
            let (health, sessions, protected) = match (&entry.public_ip, &client) {
                (None, _) => ("no public address".to_owned(), None, None),
                (Some(_), None) => ("not probed: the stack has no relay certificate yet (run ivsctl deploy)".to_owned(), None, None),
                (Some(ip), Some(client)) => probe(client, ip).await,
            };
            Relay { entry, health, sessions, protected }
        });
    }
    let mut relays = probes.join_all().await;
    relays.sort_by(|a, b| a.entry.task_arn.cmp(&b.entry.task_arn));
    Ok(relays)
}

/// The note on a relay ECS runs but the registry does not list.
pub const NOT_REGISTERED: &str = "not in the registry: found through ECS";

async fn probe(client: &reqwest::Client, ip: &str) -> (String, Option<u64>, Option<bool>) {
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_owned() };
    match client.get(format!("https://{host}:{RELAY_HTTPS_PORT}/healthz")).send().await {
        Err(e) => (format!("unreachable: {}", e.without_url()), None, None),
        Ok(response) => {
            let ok = response.status().is_success();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let status = body["status"].as_str().unwrap_or(if ok { "ok" } else { "unhealthy" }).to_owned();
            (status, body["sessions"].as_u64(), body["protected"].as_bool())
        }
    }
}

fn print(report: &Report) {
    println!("stack {} in {} (account {})", report.stack, report.region, report.account);
    for r in &report.resources {
        let (state, detail) = match &r.observed {
            Observed::Missing => ("missing", String::new()),
            Observed::NotOurs => ("not ours", "exists without the stack's tag".to_owned()),
            Observed::Present { id, detail } => ("ok", id.as_ref().map_or_else(|| detail.clone(), |id| format!("{detail} [{id}]"))),
        };
        println!("  {state:<9} {}  {detail}", r.resource);
    }
    match &report.service {
        None => println!("service: not deployed"),
        Some(s) => {
            println!(
                "service: {} of {} tasks running, {} pending, task definition {}",
                s.running,
                s.desired,
                s.pending,
                short(&s.task_definition)
            );
            for d in &s.deployments {
                let reason = d.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                println!(
                    "  deployment {} {}: {} of {} running, {}{reason}",
                    d.status,
                    d.rollout,
                    d.running,
                    d.desired,
                    short(&d.task_definition)
                );
            }
        }
    }
    if report.relays.is_empty() {
        println!("relays: none registered");
    }
    for relay in &report.relays {
        let address = relay.entry.public_ip.as_deref().unwrap_or("no public IP");
        let sessions = relay.sessions.map(|n| format!(", {n} session(s)")).unwrap_or_default();
        let protected = if relay.protected == Some(true) { ", protected from scale-in" } else { "" };
        let note = relay.entry.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        println!("relay {address}: {}{sessions}{protected}{note}  task {}", relay.health, short(&relay.entry.task_arn));
    }
    match (&report.web_app, &report.whip) {
        (Some(web_app), Some(whip)) => println!("web app: {web_app}\nWHIP (OBS): {whip}"),
        _ => println!("web app: no front door yet (ivsctl deploy makes it)"),
    }
    if let Some(url) = &report.playback_url {
        println!("playback: {url}");
    }
    if let Some(token) = &report.token {
        println!("token: {token}");
    }
    if let Some(key) = &report.stream_key {
        println!("stream key: {key}");
    }
}

/// The part of an ARN after its last `/`.
fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
