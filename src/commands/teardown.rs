//! `ivsctl teardown`: delete, in reverse dependency order, every resource of the stack that
//! carries its tag. A resource that is already gone is not an error, so running it twice is fine.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;
use serde_json::json;

use super::Target;
use crate::aws::Aws;
use crate::stack::{Mode, Names, channel, inventory, parameter};
use crate::ui::Ui;

/// What `teardown` was asked to do.
pub struct Settings {
    pub mode: Mode,
    /// Confirmed on the command line (`--yes`): don't ask.
    pub confirmed: bool,
}

pub async fn run(target: &Target, settings: Settings) -> anyhow::Result<()> {
    let aws = Aws::connect(&target.connection).await?;
    let names = Names::new(&target.stack);
    if settings.mode == Mode::Apply && !settings.confirmed {
        confirm(&names, &aws)?;
    }
    let ui = Ui::new(target.json, settings.mode);
    let channel = channel::find(&aws, &names).await?;
    let extra_destinations = parameter::extra_destinations(&aws, &names).await?;
    for resource in inventory(&names, channel.as_deref(), &extra_destinations).iter().rev() {
        ui.step(resource.label(), resource.remove(&aws, settings.mode)).await?;
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
