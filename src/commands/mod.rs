//! One module per `ivsctl` command.

pub mod deploy;
pub mod local;
pub mod scale;
pub mod status;
pub mod teardown;
