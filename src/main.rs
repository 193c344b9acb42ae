//! `ivsctl`: run the browser-to-IVS streaming path locally, or deploy and operate it on AWS.
//! `main` parses, dispatches, and reports an error chain once.

#[cfg(feature = "aws")]
mod aws;
mod cli;
mod commands;
#[cfg(feature = "aws")]
mod error;
#[cfg(feature = "aws")]
mod image;
#[cfg(feature = "aws")]
mod permissions;
#[cfg(feature = "aws")]
mod stack;
#[cfg(feature = "aws")]
mod ui;
#[cfg(feature = "aws")]
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
    let filter = match &cli.command {
        Command::Local(_) => "warn,ivs_relay=info,ivsctl=info",
        #[cfg(feature = "aws")]
        Command::Aws(_) => cli.aws.log_filter(),
    };
    ivs_relay::server::init_logging(filter);
    ivs_relay::server::install_crypto_provider();
    let result = match cli.command {
        Command::Local(args) => commands::local::run(args.listen, args.https, args.streaming).await,
        #[cfg(feature = "aws")]
        Command::Aws(command) => cli::aws::run(&cli.aws, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ivsctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
