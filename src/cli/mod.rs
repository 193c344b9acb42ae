//! The command line: clap types, and their resolution into the settings each command takes
//! (checked here, before any AWS call). The AWS commands are in [`aws`], behind the default
//! `aws` feature (`ivsctl local` needs none of the AWS SDK).

#[cfg(feature = "aws")]
pub mod aws;

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use ivs_relay::config::StreamingArgs;

/// Go live on Amazon IVS (or any RTMP ingest) from a browser: run the relay locally, or deploy
/// and operate it on AWS.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
pub struct Cli {
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: aws::AwsArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole streaming path on this machine, no AWS account needed: open the printed
    /// URL, press Go Live; recordings go to ./recordings unless --destination says otherwise.
    Local(LocalArgs),
    #[cfg(feature = "aws")]
    #[command(flatten)]
    Aws(aws::AwsCommand),
}

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Address for the web app and WHIP.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Serve HTTPS with a self-signed certificate (browsers on other machines need a secure page).
    #[arg(long)]
    pub https: bool,

    #[command(flatten)]
    pub streaming: StreamingArgs,
}
