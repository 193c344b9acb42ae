//! `ivs-ip-register`: on ECS "Task State Change" events, keeps one DynamoDB row per relay task
//! with its public address, so `ivsctl status` and the web app can find live relays.
//!
//! Layout:
//! * `event` — the event's shape and the decision it leads to (pure).
//! * `network` — the task's public IP, from its ENI (EC2).
//! * `registry` — the table: order-safe conditional writes, and reading the running set.
//! * `handler` — one event end to end; what is logged, acknowledged or retried.
//! * `package` — the deployment zip.

pub mod event;
pub mod handler;
pub mod network;
pub mod package;
pub mod registry;
