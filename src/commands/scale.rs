//! `ivsctl scale --tasks N`: set the service's desired count, wait until N tasks run (or say why
//! not), then show them: from the relay registry, and from ECS for any the registry lacks.

use anyhow::Context;
use serde_json::json;

use super::status::{NOT_REGISTERED, relays};
use super::{Target, Wait};
use crate::aws::Aws;
use crate::stack::{Mode, Names, autoscaling, service};
use crate::ui::Ui;

pub async fn run(target: &Target, tasks: u16, wait: Wait) -> anyhow::Result<()> {
    let aws = Aws::connect(&target.connection).await?;
    let names = Names::new(&target.stack);
    let count = i32::from(tasks);
    // Autoscaling would undo a count outside its bounds at its next look.
    if let Some(bounds) = autoscaling::bounds(&aws, &names).await?
        && !bounds.contains(count)
    {
        anyhow::bail!(
            "--tasks {count} is outside the autoscaling bounds of {} ({bounds}): choose a count within them, or change them with ivsctl deploy --min-tasks/--max-tasks",
            names.service
        );
    }
    service::set_desired_count(&aws, &names, count).await?;
    let ui = Ui::new(target.json, Mode::Apply);
    let Wait::Until(timeout) = wait else {
        if target.json {
            println!("{:#}", json!({ "stack": names.stack.to_string(), "desired": count, "waited": false }));
        } else {
            println!("scale: desired count of {} set to {count} (not waiting)", names.service);
        }
        return Ok(());
    };
    let bar = ui.spinner(format!("scaling {} to {count}", names.service));
    let state = service::wait_until_running(&aws, &names, count, timeout, &bar).await;
    bar.finish_and_clear();
    let state = state.with_context(|| format!("{} did not reach {count} running tasks", names.service))?;
    let relays = relays(&aws, &names).await?;
    if target.json {
        println!("{:#}", json!({ "stack": names.stack.to_string(), "desired": count, "waited": true, "service": state, "relays": relays }));
        return Ok(());
    }
    let registered = relays.iter().filter(|r| r.entry.note.as_deref() != Some(NOT_REGISTERED)).count();
    println!("scale: {} of {count} tasks running; the registry lists {registered}", state.running);
    if registered < relays.len() {
        println!("  {} more running per ECS, not in the registry yet", relays.len() - registered);
    }
    for relay in &relays {
        let note = relay.entry.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        println!("  {} {}{note}", relay.entry.public_ip.as_deref().unwrap_or("(no public IP)"), relay.health);
    }
    Ok(())
}
