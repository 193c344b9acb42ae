//! The Lambda function's `bootstrap`: clients built once, then the runtime loop.
//! Environment (set by `ivsctl deploy`): `REGISTRY_TABLE`, `CLUSTER` (name or ARN).

use ivs_ip_register::handler::Handler;
use ivs_ip_register::network::Network;
use ivs_ip_register::registry::Registry;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // CloudWatch adds timestamps; colours would only be noise there.
    tracing_subscriber::fmt().with_ansi(false).without_time().with_target(false).init();
    let table = std::env::var("REGISTRY_TABLE").map_err(|_| "REGISTRY_TABLE is not set (ivsctl deploy sets it)")?;
    let cluster = std::env::var("CLUSTER").map_err(|_| "CLUSTER is not set (ivsctl deploy sets it)")?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let handler = Handler {
        cluster,
        network: Network::new(aws_sdk_ec2::Client::new(&config)),
        registry: Registry::new(aws_sdk_dynamodb::Client::new(&config), table),
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // An error makes Lambda retry the event: only AWS failures get here.
        handler.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
