//! `ivs-ip-register`: one bootstrap, two functions, told apart by the event they get.
//! * On ECS "Task State Change" events (EventBridge) it keeps one DynamoDB row per relay task
//!   with its public address, so `ivsctl status` and the front door can find live relays.
//! * On Function URL requests it is the front door (`front_door`): the web app, and WHIP
//!   sessions sent to the least-loaded relay.
//!
//! One binary rather than two: one static build and one zip to check and upload, and the two
//! share the registry code; the function's environment says which role it has.
//!
//! Layout:
//! * `event` — the event's shape and the decision it leads to (pure).
//! * `network` — the task's public IP, from its ENI (EC2).
//! * `registry` — the table: order-safe conditional writes, and reading the running set.
//! * `handler` — one event end to end; what is logged, acknowledged or retried.
//! * `front_door` — the Function URL in front of the relays.
//! * `package` — the deployment zip.

pub mod event;
pub mod front_door;
pub mod handler;
pub mod network;
pub mod package;
pub mod registry;
