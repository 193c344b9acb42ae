//! One module per `ivsctl` command. Commands take resolved settings ([`Target`] and their own),
//! never the command line's types. All but `local` act on AWS (the default `aws` feature).

#[cfg(feature = "aws")]
pub mod deploy;
pub mod local;
#[cfg(feature = "aws")]
pub mod policy;
#[cfg(feature = "aws")]
pub mod scale;
#[cfg(feature = "aws")]
pub mod status;
#[cfg(feature = "aws")]
pub mod teardown;

#[cfg(feature = "aws")]
pub use self::aws_settings::{Target, Wait};

#[cfg(feature = "aws")]
mod aws_settings {
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
}
