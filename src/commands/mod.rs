//! One module per `ivsctl` command. Commands take resolved settings ([`Target`] and their own),
//! never the command line's types.

pub mod deploy;
pub mod local;
pub mod policy;
pub mod scale;
pub mod status;
pub mod teardown;

use std::time::Duration;

use crate::aws;
use crate::stack::StackName;

/// Which stack, where, and how to report.
pub struct Target {
    pub stack: StackName,
    pub connection: aws::Settings,
    /// One JSON document instead of lines.
    pub json: bool,
}

/// Whether to wait for the relay tasks, and how long.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    No,
    Until(Duration),
}
