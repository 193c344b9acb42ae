//! `ivsctl scale --tasks N`: set the service's desired count, wait until N tasks run (or say why
//! not), then show which of them the relay registry lists.

use anyhow::Context;
use serde_json::json;

use super::status::relays;
use crate::aws::Aws;
use crate::cli::{AwsArgs, ScaleArgs};
use crate::stack::{Mode, Names, service};
use crate::ui::Ui;

pub async fn run(global: &AwsArgs, args: ScaleArgs) -> anyhow::Result<()> {
    let aws = Aws::connect(global).await?;
    let names = Names::new(&global.stack);
    let count = i32::from(args.tasks);
    service::set_desired_count(&aws, &names, count).await?;
    let ui = Ui::new(global.json, Mode::Apply);
    if args.wait.no_wait {
        if global.json {
            println!("{:#}", json!({ "stack": names.stack.to_string(), "desired": count, "waited": false }));
        } else {
            println!("scale: desired count of {} set to {count} (not waiting)", names.service);
        }
        return Ok(());
    }
    let bar = ui.spinner(format!("scaling {} to {count}", names.service));
    let state = service::wait_until_running(&aws, &names, count, args.wait.timeout, &bar).await;
    bar.finish_and_clear();
    let state = state.with_context(|| format!("{} did not reach {count} running tasks", names.service))?;
    let registered = relays(&aws, &names).await?;
    if global.json {
        println!(
            "{:#}",
            json!({ "stack": names.stack.to_string(), "desired": count, "waited": true, "service": state, "relays": registered })
        );
    } else {
        println!("scale: {} of {count} tasks running; the registry lists {}", state.running, registered.len());
        for relay in &registered {
            println!("  {} {}", relay.entry.public_ip.as_deref().unwrap_or("(no public IP)"), relay.health);
        }
    }
    Ok(())
}
