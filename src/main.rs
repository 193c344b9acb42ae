//! `ivsctl`: run the browser-to-IVS streaming path locally, or deploy and operate it on AWS.
//! `main` parses, dispatches, and reports an error chain once.

mod aws;
mod cli;
mod commands;
mod error;
mod image;
mod permissions;
mod stack;
mod ui;
mod wait;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::Command;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line and exit code 1, like every other error of ivsctl.
            let message = e.render().to_string();
            let first = message.lines().next().unwrap_or_default().trim_start_matches("error: ");
            eprintln!("ivsctl: {first} (see ivsctl --help)");
            return ExitCode::FAILURE;
        }
    };
    let filter = match (&cli.command, cli.aws.verbose) {
        (Command::Local(_), _) => "warn,ivs_relay=info,ivsctl=info",
        (_, 0) => "error",
        (_, 1) => "warn,ivsctl=debug",
        _ => "info,ivsctl=debug,aws_smithy_runtime=debug",
    };
    ivs_relay::server::init_logging(filter);
    ivs_relay::server::install_crypto_provider();
    let target = cli.aws.target();
    let result = match cli.command {
        Command::Local(args) => commands::local::run(args.listen, args.https, args.streaming).await,
        Command::Deploy(args) => match args.resolve() {
            Ok(settings) => commands::deploy::run(&target, settings).await,
            Err(e) => {
                eprintln!("ivsctl: {e} (see ivsctl deploy --help)");
                return ExitCode::FAILURE;
            }
        },
        Command::Status(args) => {
            let settings = commands::status::Settings { show_token: args.show_token, show_stream_key: args.show_stream_key };
            commands::status::run(&target, settings).await
        }
        Command::Scale(args) => commands::scale::run(&target, args.tasks, args.wait.resolve()).await,
        Command::Teardown(args) => {
            let mode = if args.dry_run { stack::Mode::DryRun } else { stack::Mode::Apply };
            commands::teardown::run(&target, commands::teardown::Settings { mode, confirmed: args.yes }).await
        }
        Command::Policy(args) => commands::policy::run(&target, args.account.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ivsctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
