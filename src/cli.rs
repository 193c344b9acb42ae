//! The command line: clap types only; commands take what is parsed here.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use ivs_relay::config::StreamingArgs;

/// Go live on Amazon IVS (or any RTMP ingest) from a browser: run the relay locally, or deploy it.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole streaming path on this machine, no AWS account needed: open the printed
    /// URL, press Go Live; recordings go to ./recordings unless --destination says otherwise.
    Local(LocalArgs),
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
