//! The `ivs-ip-register` Lambda against a real moto server (DynamoDB, EC2): the handler itself,
//! and the built `bootstrap` binary driven through a local Lambda Runtime API.

mod common;

use std::collections::BTreeSet;

use common::lambda::{Invocation, RuntimeApi};
use common::moto::Moto;
use ivs_ip_register::handler::{Handler, Outcome};
use ivs_ip_register::network::Network;
use ivs_ip_register::registry::Registry;
use serde_json::{Value, json};

const TABLE: &str = "ivs-relays";
const CLUSTER: &str = "ivs";

async fn create_table(config: &aws_config::SdkConfig) {
    common::moto::create_registry_table(config, TABLE).await;
}

/// An ENI in a default subnet with an Elastic IP, as a Fargate task with a public IP has.
async fn eni_with_public_ip(config: &aws_config::SdkConfig) -> (String, String) {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let subnets = ec2.describe_subnets().send().await.expect("subnets");
    let subnet = subnets.subnets()[0].subnet_id().expect("subnet id").to_owned();
    let eni = ec2.create_network_interface().subnet_id(subnet).send().await.expect("eni");
    let eni_id = eni.network_interface().and_then(|n| n.network_interface_id()).expect("eni id").to_owned();
    let address = ec2.allocate_address().send().await.expect("eip");
    ec2.associate_address()
        .allocation_id(address.allocation_id().expect("allocation"))
        .network_interface_id(&eni_id)
        .send()
        .await
        .expect("associate");
    (eni_id, address.public_ip().expect("ip").to_owned())
}

fn event(cluster: &str, task: &str, last: &str, version: u64, eni: &str) -> Value {
    json!({
        "version": "0", "id": format!("{task}-{version}"), "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:ecs:us-east-1:123456789012:task/{cluster}/{task}")],
        "detail": {
            "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{cluster}"),
            "taskArn": format!("arn:aws:ecs:us-east-1:123456789012:task/{cluster}/{task}"),
            "lastStatus": last, "desiredStatus": if last == "STOPPED" { "STOPPED" } else { "RUNNING" },
            "version": version, "availabilityZone": "us-east-1a", "launchType": "FARGATE",
            "startedAt": "2026-11-25T11:59:58Z",
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/ivs-relay:4",
            "attachments": [{"id": "att", "type": "eni", "status": "ATTACHED", "details": [
                {"name": "subnetId", "value": "subnet-1"}, {"name": "networkInterfaceId", "value": eni}, {"name": "privateIPv4Address", "value": "172.31.1.10"}]}]
        }
    })
}

async fn handler(moto: &Moto) -> (Handler, aws_config::SdkConfig) {
    let config = moto.sdk_config().await;
    create_table(&config).await;
    let handler = Handler {
        cluster: CLUSTER.to_owned(),
        network: Network::new(aws_sdk_ec2::Client::new(&config)),
        registry: Registry::new(aws_sdk_dynamodb::Client::new(&config), TABLE),
    };
    (handler, config)
}

fn task_arn(task: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/{task}")
}

#[tokio::test]
async fn running_records_the_public_ip_and_stopped_removes_it() {
    let moto = Moto::start().await;
    let (handler, config) = handler(&moto).await;
    let (eni, public_ip) = eni_with_public_ip(&config).await;

    let outcome = handler.handle(event(CLUSTER, "t1", "RUNNING", 2, &eni)).await.expect("handled");
    assert_eq!(outcome, Outcome::Running { task_arn: task_arn("t1"), public_ip: Some(public_ip.clone()) });
    let running = handler.registry.running().await.expect("scan");
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].public_ip.as_deref(), Some(public_ip.as_str()));
    assert_eq!(running[0].revision, Some(4));
    assert_eq!(running[0].availability_zone.as_deref(), Some("us-east-1a"));

    handler.handle(event(CLUSTER, "t1", "STOPPED", 5, &eni)).await.expect("handled");
    assert!(handler.registry.running().await.expect("scan").is_empty());
    // A late RUNNING (older version) does not bring the dead relay back.
    let late = handler.handle(event(CLUSTER, "t1", "RUNNING", 3, &eni)).await.expect("handled");
    assert_eq!(late, Outcome::Stale { task_arn: task_arn("t1"), version: 3 });
    assert!(handler.registry.running().await.expect("scan").is_empty());
}

#[tokio::test]
async fn shuffled_and_duplicated_events_end_with_exactly_the_running_set() {
    let moto = Moto::start().await;
    let (handler, config) = handler(&moto).await;
    let (eni, _) = eni_with_public_ip(&config).await;
    // Tasks a..e start (PENDING 1, RUNNING 2); b and d then stop (STOPPING 3, STOPPED 4).
    let mut events = Vec::new();
    for task in ["a", "b", "c", "d", "e"] {
        events.push(event(CLUSTER, task, "PENDING", 1, &eni));
        events.push(event(CLUSTER, task, "RUNNING", 2, &eni));
        if task == "b" || task == "d" {
            events.push(event(CLUSTER, task, "STOPPING", 3, &eni));
            events.push(event(CLUSTER, task, "STOPPED", 4, &eni));
        }
    }
    let duplicated: Vec<Value> = events.iter().chain(events.iter().step_by(2)).cloned().collect();
    // A fixed-seed shuffle (linear congruential), so a failure replays.
    let mut order: Vec<usize> = (0..duplicated.len()).collect();
    let mut seed: u64 = 0x5eed;
    for i in (1..order.len()).rev() {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (seed >> 33) as usize % (i + 1));
    }
    for i in order {
        handler.handle(duplicated[i].clone()).await.expect("handled");
    }
    let running: BTreeSet<String> = handler.registry.running().await.expect("scan").into_iter().map(|r| r.task_arn).collect();
    assert_eq!(running, ["a", "c", "e"].iter().map(|t| task_arn(t)).collect());
}

#[tokio::test]
async fn other_clusters_and_malformed_events_are_acknowledged_without_writes() {
    let moto = Moto::start().await;
    let (handler, _) = handler(&moto).await;
    let other = handler.handle(event("someone-elses", "x", "RUNNING", 2, "eni-0")).await.expect("acknowledged");
    assert!(matches!(other, Outcome::Ignored { .. }), "{other:?}");
    for garbage in [json!("not an event"), json!({"detail": {"lastStatus": 7}}), json!(null)] {
        let outcome = handler.handle(garbage).await.expect("acknowledged, not retried");
        assert!(matches!(outcome, Outcome::Malformed { .. }), "{outcome:?}");
    }
    // A task whose ENI is gone (or has no public address) is still recorded, with a note.
    let outcome = handler.handle(event(CLUSTER, "y", "RUNNING", 2, "eni-00000000000000000")).await.expect("handled");
    assert_eq!(outcome, Outcome::Running { task_arn: task_arn("y"), public_ip: None });
    let running = handler.registry.running().await.expect("scan");
    assert_eq!(running.len(), 1);
    assert!(running[0].note.as_deref().is_some_and(|n| n.contains("no public IP")));
}

#[tokio::test]
async fn the_built_bootstrap_serves_invocations_through_the_runtime_api() {
    let moto = Moto::start().await;
    let config = moto.sdk_config().await;
    create_table(&config).await;
    let (eni, public_ip) = eni_with_public_ip(&config).await;
    let api = RuntimeApi::start().await;
    let mut env: Vec<(String, String)> = moto.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    env.extend([("REGISTRY_TABLE".to_owned(), TABLE.to_owned()), ("CLUSTER".to_owned(), CLUSTER.to_owned())]);
    let _bootstrap = api.spawn_bootstrap(&env);

    let mut outcomes = Vec::new();
    for event in [event(CLUSTER, "t9", "RUNNING", 2, &eni), json!({"garbage": true}), event("elsewhere", "z", "RUNNING", 2, &eni)] {
        match api.invoke(event).await {
            Invocation::Response(answer) => outcomes.push(answer),
            Invocation::Error(error) => panic!("an invocation failed: {error}"),
        }
    }
    let kinds: Vec<&str> = outcomes.iter().map(|v| v["outcome"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, vec!["running", "malformed", "ignored"]);
    assert_eq!(outcomes[0]["public_ip"], public_ip.as_str());
    // The same bootstrap without the front door's settings refuses a Function URL request
    // (an error, not a wrong answer).
    let request =
        json!({"rawPath": "/", "headers": {}, "requestContext": {"http": {"method": "GET"}, "timeEpoch": 0}, "isBase64Encoded": false});
    assert!(matches!(api.invoke(request).await, Invocation::Error(_)));
}
