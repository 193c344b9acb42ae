//! `ivsctl status`: every resource of the stack, the service's tasks and deployments, and each
//! running relay from the registry with its health and session count.

use std::time::Duration;

use ivs_ip_register::registry::RelayEntry;
use serde::Serialize;

use crate::aws::Aws;
use crate::cli::{AwsArgs, StatusArgs};
use crate::stack::parameter::{self, Kind};
use crate::stack::service::ServiceState;
use crate::stack::{
    Names, Observed, channel, cluster, function, iam, log_group, network, repository, rule, service, table, task_definition,
};

#[derive(Debug, Serialize)]
struct Report {
    stack: String,
    region: String,
    account: String,
    resources: Vec<Resource>,
    service: Option<ServiceState>,
    relays: Vec<Relay>,
    /// The web app of the first healthy relay.
    web_url: Option<String>,
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
}

pub async fn run(global: &AwsArgs, args: StatusArgs) -> anyhow::Result<()> {
    let aws = Aws::connect(global).await?;
    let names = Names::new(&global.stack);
    let n = &names;
    let (repository, relay_logs, lambda_logs, table, execution, task, lambda_role, group, cluster, family, service, function, rule) = tokio::join!(
        repository::observe(&aws, n),
        log_group::observe(&aws, n, &n.relay_log_group),
        log_group::observe(&aws, n, &n.lambda_log_group),
        table::observe(&aws, n),
        iam::observe(&aws, n, &n.execution_role),
        iam::observe(&aws, n, &n.task_role),
        iam::observe(&aws, n, &n.lambda_role),
        network::observe_security_group(&aws, n),
        cluster::observe(&aws, n),
        task_definition::observe(&aws, n),
        service::observe(&aws, n),
        function::observe(&aws, n),
        rule::observe(&aws, n),
    );
    let resources = vec![
        Resource { resource: format!("ECR repository {}", n.repository), observed: repository? },
        Resource { resource: format!("log group {}", n.relay_log_group), observed: relay_logs? },
        Resource { resource: format!("log group {}", n.lambda_log_group), observed: lambda_logs? },
        Resource { resource: format!("DynamoDB table {}", n.table), observed: table? },
        Resource { resource: format!("IAM role {}", n.execution_role), observed: execution? },
        Resource { resource: format!("IAM role {}", n.task_role), observed: task? },
        Resource { resource: format!("IAM role {}", n.lambda_role), observed: lambda_role? },
        Resource { resource: format!("security group {}", n.security_group), observed: group? },
        Resource { resource: format!("ECS cluster {}", n.cluster), observed: cluster? },
        Resource { resource: format!("task definition {}", n.task_family), observed: family? },
        Resource { resource: format!("ECS service {}", n.service), observed: service? },
        Resource { resource: format!("Lambda function {}", n.function), observed: function? },
        Resource { resource: format!("EventBridge rule {}", n.rule), observed: rule? },
    ];
    let mut resources = resources;
    let table_present = matches!(resources[3].observed, Observed::Present { .. });
    resources.push(Resource {
        resource: format!("SSM parameter {}", Kind::Token.name(n)),
        observed: parameter::observe(&aws, n, Kind::Token).await?,
    });
    let mut playback_url = None;
    let mut stream_key = None;
    if let Some(arn) = parameter::value(&aws, n, Kind::Channel).await? {
        let (observed, url) = channel::observe(&aws, n, &arn).await?;
        playback_url = url;
        resources.push(Resource { resource: format!("IVS channel {arn}"), observed });
        for kind in [Kind::Channel, Kind::Destination] {
            resources
                .push(Resource { resource: format!("SSM parameter {}", kind.name(n)), observed: parameter::observe(&aws, n, kind).await? });
        }
        if args.show_stream_key {
            let destination = parameter::value(&aws, n, Kind::Destination).await?.unwrap_or_default();
            stream_key = destination.rsplit_once("/app/").map(|(_, key)| key.to_owned());
        }
    }
    let token = if args.show_token { parameter::value(&aws, n, Kind::Token).await? } else { None };
    let relays = if table_present { relays(&aws, &names).await? } else { Vec::new() };
    let web_url = relays.iter().find(|r| r.health == "ok").and_then(|r| r.entry.public_ip.as_ref()).map(|ip| format!("https://{ip}/"));
    let report = Report {
        stack: names.stack.to_string(),
        region: aws.region.clone(),
        account: aws.account.clone(),
        resources,
        service: service::state(&aws, &names).await?,
        relays,
        web_url,
        playback_url,
        token,
        stream_key,
    };
    if global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(())
}

/// The registry's running relays, each probed at `/healthz`.
pub async fn relays(aws: &Aws, names: &Names) -> anyhow::Result<Vec<Relay>> {
    let registry = ivs_ip_register::registry::Registry::new(aws.dynamodb.clone(), &names.table);
    let entries = registry.running().await?;
    // The relays serve a self-signed certificate unless given one; the probe only reads health.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).danger_accept_invalid_certs(true).build()?;
    let mut probes = tokio::task::JoinSet::new();
    for entry in entries {
        let client = client.clone();
        probes.spawn(async move {
            let (health, sessions) = match &entry.public_ip {
                None => ("no public address".to_owned(), None),
                Some(ip) => probe(&client, ip).await,
            };
            Relay { entry, health, sessions }
        });
    }
    let mut relays = probes.join_all().await;
    relays.sort_by(|a, b| a.entry.task_arn.cmp(&b.entry.task_arn));
    Ok(relays)
}

async fn probe(client: &reqwest::Client, ip: &str) -> (String, Option<u64>) {
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_owned() };
    match client.get(format!("https://{host}/healthz")).send().await {
        Err(e) => (format!("unreachable: {}", e.without_url()), None),
        Ok(response) => {
            let ok = response.status().is_success();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let sessions = body["sessions"].as_u64();
            let status = body["status"].as_str().unwrap_or(if ok { "ok" } else { "unhealthy" }).to_owned();
            (status, sessions)
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
        let note = relay.entry.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        println!("relay {address}: {}{sessions}{note}  task {}", relay.health, short(&relay.entry.task_arn));
    }
    match &report.web_url {
        Some(url) => println!("web app: {url}"),
        None => println!("web app: no healthy relay yet"),
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
