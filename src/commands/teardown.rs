//! `ivsctl teardown`: delete, in reverse dependency order, every resource of the stack that
//! carries its tag. A resource that is already gone is not an error, so running it twice is fine.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;
use serde_json::json;

use crate::aws::Aws;
use crate::cli::{AwsArgs, TeardownArgs};
use crate::stack::parameter::{self, Kind};
use crate::stack::{Mode, Names, channel, cluster, function, iam, log_group, network, repository, rule, service, table, task_definition};
use crate::ui::Ui;

pub async fn run(global: &AwsArgs, args: TeardownArgs) -> anyhow::Result<()> {
    let aws = Aws::connect(global).await?;
    let names = Names::new(&global.stack);
    let mode = if args.dry_run { Mode::DryRun } else { Mode::Apply };
    if mode == Mode::Apply && !args.yes {
        confirm(&names, &aws)?;
    }
    let ui = Ui::new(global.json, mode);
    let n = &names;
    ui.step(format!("EventBridge rule {}", n.rule), rule::remove(&aws, n, mode)).await?;
    ui.step(format!("Lambda function {}", n.function), function::remove(&aws, n, mode)).await?;
    ui.step(format!("ECS service {}", n.service), service::remove(&aws, n, mode)).await?;
    ui.step(format!("task definition {}", n.task_family), task_definition::remove(&aws, n, mode)).await?;
    ui.step(format!("ECS cluster {}", n.cluster), cluster::remove(&aws, n, mode)).await?;
    ui.step(format!("security group {}", n.security_group), network::remove_security_group(&aws, n, mode)).await?;
    ui.step(format!("DynamoDB table {}", n.table), table::remove(&aws, n, mode)).await?;
    if let Some(arn) = parameter::value(&aws, n, Kind::Channel).await? {
        ui.step(format!("IVS channel {arn}"), channel::remove(&aws, n, Some(&arn), mode)).await?;
    }
    for kind in [Kind::Destination, Kind::Channel, Kind::Token] {
        ui.step(format!("SSM parameter {}", kind.name(n)), parameter::remove(&aws, n, kind, mode)).await?;
    }
    for group in [&n.relay_log_group, &n.lambda_log_group] {
        ui.step(format!("log group {group}"), log_group::remove(&aws, n, group, mode)).await?;
    }
    ui.step(format!("ECR repository {}", n.repository), repository::remove(&aws, n, mode)).await?;
    for role in [&n.lambda_role, &n.task_role, &n.execution_role] {
        ui.step(format!("IAM role {role}"), iam::remove(&aws, n, role, mode)).await?;
    }
    ui.finish("teardown", json!({ "stack": names.stack.to_string(), "region": aws.region }));
    Ok(())
}

/// Asks on the terminal; without one, refuses (a script must say `--yes`).
fn confirm(names: &Names, aws: &Aws) -> anyhow::Result<()> {
    let question = format!("Delete stack {} in {} (account {}), with its logs, registry and images?", names.stack, aws.region, aws.account);
    if !std::io::stdin().is_terminal() {
        bail!("{question} Refusing without a terminal to ask on: pass --yes");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("teardown cancelled; nothing was deleted");
    }
    Ok(())
}
