//! One module per `ivsctl` command.

pub mod local;
