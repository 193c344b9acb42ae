//! `ivsctl`: run the browser-to-IVS streaming path locally, or deploy and operate it on AWS.
//! `main` parses, dispatches, and reports an error chain once.

mod aws;
mod cli;
mod commands;
mod error;
mod image;
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
    let result = match cli.command {
        Command::Local(args) => commands::local::run(args).await,
        Command::Deploy(args) => commands::deploy::run(&cli.aws, args).await,
        Command::Status(args) => commands::status::run(&cli.aws, args).await,
        Command::Scale(args) => commands::scale::run(&cli.aws, args).await,
        Command::Teardown(args) => commands::teardown::run(&cli.aws, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ivsctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
