//! `ivsctl`: run the browser-to-IVS streaming path locally, and (coming) deploy and operate it
//! on AWS. `main` parses, dispatches, and reports an error chain once.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    ivs_relay::server::init_logging();
    ivs_relay::server::install_crypto_provider();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Local(args) => commands::local::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ivsctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
