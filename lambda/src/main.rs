//! The Lambda functions' `bootstrap`: clients built once, then the runtime loop. Each invocation
//! is dispatched on its event's shape: a Function URL request goes to the front door, anything
//! else is an ECS task state change for the registry.
//!
//! Environment (set by `ivsctl deploy`): `REGISTRY_TABLE` for both; `CLUSTER` (name or ARN) for
//! the registry; `RELAY_CERT` (the relays' pinned certificate, PEM), `RELAY_PORT` and
//! `PLAYBACK_URL` for the front door.

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use ivs_ip_register::front_door::{FrontDoor, Settings};
use ivs_ip_register::handler::Handler;
use ivs_ip_register::network::Network;
use ivs_ip_register::registry::Registry;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

/// The roles this function's environment configures; an event for another one is an error.
struct Roles {
    registrar: Result<Handler, String>,
    front_door: Result<FrontDoor, String>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // CloudWatch adds timestamps; colours would only be noise there.
    tracing_subscriber::fmt().with_ansi(false).without_time().with_target(false).init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let table = std::env::var("REGISTRY_TABLE").map_err(|_| "REGISTRY_TABLE is not set (ivsctl deploy sets it)")?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let registry = || Registry::new(aws_sdk_dynamodb::Client::new(&config), table.clone());
    let registrar = std::env::var("CLUSTER")
        .map(|cluster| Handler { cluster, network: Network::new(aws_sdk_ec2::Client::new(&config)), registry: registry() })
        .map_err(|_| "CLUSTER is not set (ivsctl deploy sets it on the registry function)".to_owned());
    let front_door = Settings::from_env().and_then(|settings| FrontDoor::new(registry(), &settings)).map_err(|e| e.to_string());
    let roles = &Roles { registrar, front_door };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move { dispatch(roles, event.payload).await })).await
}

async fn dispatch(roles: &Roles, payload: Value) -> Result<Value, Error> {
    if payload.pointer("/requestContext/http").is_some() {
        let front_door = roles.front_door.as_ref().map_err(|e| format!("a Function URL request, but no front door here: {e}"))?;
        let request: LambdaFunctionUrlRequest = serde_json::from_value(payload)?;
        // Boxed: the front door's future (reqwest, rustls) is too deep to nest in the runtime's.
        return Ok(serde_json::to_value(Box::pin(front_door.handle(request)).await)?);
    }
    let registrar = roles.registrar.as_ref().map_err(|e| format!("a task event, but no registry here: {e}"))?;
    // An error makes Lambda retry the event: only AWS failures get here.
    Ok(serde_json::to_value(registrar.handle(payload).await?)?)
}
