//! `ivsctl deploy | status | scale | teardown` against a real moto server: the stack it builds,
//! idempotence counted in write calls, repair of hand-made changes, dry runs, side-by-side
//! stacks, teardown that spares what isn't the stack's, and clear failures on bad input.

mod common;

use std::process::Output;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange};
use common::cli::{assert_ok, stderr, stdout, with_verb};
use common::moto::Moto;

/// Lines of a deploy: the stack's 23 resources (with the token's and the relay certificate's SSM
/// parameters, the registry's invoke permission, the front door with its URL and two public
/// grants) and the account's ECS service-linked role.
const RESOURCES: usize = 24;
/// Teardown deletes the stack's resources, not the account's service-linked role.
const TEARDOWN_STEPS: usize = RESOURCES - 1;
/// Teardown also looks for the autoscaling target and policy, which only a deploy with
/// --min-tasks/--max-tasks makes.
const AUTOSCALING: usize = 2;
const TEARDOWN_LINES: usize = TEARDOWN_STEPS + AUTOSCALING;
/// What `status` lists for a stack without IVS.
const STATUS_RESOURCES: usize = RESOURCES - 1;

/// The image these tests deploy (as `--image`): building and pushing ours is `tests/image.rs`'s
/// subject, with a registry to push to.
const GIVEN_IMAGE: &str = "public.ecr.aws/example/ivs-relay@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Runs `ivsctl` against `moto` with `args`.
async fn ivsctl(moto: &Moto, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ivsctl"));
    command.args(args).envs(moto.env()).env("IVSCTL_IMAGE", GIVEN_IMAGE).env_remove("IVSCTL_STACK").stdin(std::process::Stdio::null());
    command.output().await.expect("ivsctl runs")
}

async fn deploy(moto: &Moto, stack: &str) -> String {
    assert_ok(&ivsctl(moto, &["--stack", stack, "deploy", "--no-wait"]).await)
}

async fn status_json(moto: &Moto, stack: &str) -> serde_json::Value {
    let out = assert_ok(&ivsctl(moto, &["--stack", stack, "--json", "status"]).await);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json is JSON ({e}):\n{out}"))
}

fn present(status: &serde_json::Value) -> Vec<String> {
    status["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter(|r| r["state"] == "present")
        .map(|r| r["resource"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn sg_filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The stack's security group and its ingress rules as sorted `proto from-to cidr` lines.
async fn ingress(config: &aws_config::SdkConfig, stack: &str) -> (aws_sdk_ec2::types::SecurityGroup, Vec<String>) {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let groups = ec2.describe_security_groups().filters(sg_filter("tag:ivsctl:stack", stack)).send().await.expect("groups");
    let [group] = groups.security_groups() else { panic!("one tagged group: {groups:?}") };
    let mut rules: Vec<String> = group
        .ip_permissions()
        .iter()
        .flat_map(|p| {
            let proto = p.ip_protocol().unwrap_or_default().to_owned();
            let ports = format!("{}-{}", p.from_port().unwrap_or_default(), p.to_port().unwrap_or_default());
            p.ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip().map(str::to_owned))
                .chain(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6().map(str::to_owned)))
                .map(move |c| format!("{proto} {ports} {c}"))
        })
        .collect();
    rules.sort();
    (group.clone(), rules)
}

/// The media (UDP) ports the stack's security group opens, each for IPv4 and IPv6.
async fn media_ports(config: &aws_config::SdkConfig, stack: &str) -> Vec<String> {
    let (_, rules) = ingress(config, stack).await;
    rules.iter().filter(|r| r.starts_with("udp ")).map(|r| r.split(' ').nth(1).unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn a_new_media_port_opens_at_once_and_the_old_one_closes_after_the_rollout() {
    let moto = Moto::start().await;
    let config = moto.sdk_config().await;
    deploy(&moto, "ivs").await;

    // Without waiting for the rollout, tasks on the old revision may still use 50000: both open.
    let out = assert_ok(&ivsctl(&moto, &["deploy", "--udp-port", "50001", "--no-wait"]).await);
    assert_eq!(media_ports(&config, "ivs").await, ["50000-50000", "50000-50000", "50001-50001", "50001-50001"]);
    assert!(out.contains("kept ingress udp/50000"), "the plan says why 50000 stays open:\n{out}");
    // The next deploy finds every task definition on 50001, so 50000 goes.
    let out = assert_ok(&ivsctl(&moto, &["deploy", "--udp-port", "50001", "--no-wait"]).await);
    assert_eq!(media_ports(&config, "ivs").await, ["50001-50001", "50001-50001"], "{out}");
}

#[tokio::test]
async fn deploy_creates_exactly_the_stack_and_a_second_deploy_writes_nothing() {
    let moto = Moto::start().await;
    let out = deploy(&moto, "ivs").await;
    assert_eq!(with_verb(&out, "created").len(), RESOURCES, "every resource created:\n{out}");
    assert!(out.contains(&format!("deploy: {RESOURCES} created")), "summary:\n{out}");

    let config = moto.sdk_config().await;
    // IAM: four roles, tagged, with the right trust.
    let iam = aws_sdk_iam::Client::new(&config);
    let roles = [
        ("ivs-relay-execution", "ecs-tasks"),
        ("ivs-relay-task", "ecs-tasks"),
        ("ivs-ip-register", "lambda"),
        ("ivs-front-door", "lambda"),
    ];
    for (role, principal) in roles {
        let found = iam.get_role().role_name(role).send().await.expect(role);
        let role = found.role().expect("role");
        assert!(role.tags().iter().any(|t| t.key() == "ivsctl:stack" && t.value() == "ivs"), "{} is tagged", role.role_name());
        let trust =
            percent_encoding::percent_decode_str(role.assume_role_policy_document().unwrap_or_default()).decode_utf8_lossy().into_owned();
        assert!(trust.contains(&format!("{principal}.amazonaws.com")), "{} trusts {principal}: {trust}", role.role_name());
    }
    let execution_policy = iam.get_role_policy().role_name("ivs-relay-execution").policy_name("ivsctl").send().await.expect("policy");
    let execution_policy = percent_encoding::percent_decode_str(execution_policy.policy_document()).decode_utf8_lossy().into_owned();
    assert!(execution_policy.contains(":repository/ivs-relay"), "image pull scoped to the repository: {execution_policy}");
    let role_policy = |role: &'static str| {
        let iam = iam.clone();
        async move {
            let policy = iam.get_role_policy().role_name(role).policy_name("ivsctl").send().await.expect("policy");
            let text = percent_encoding::percent_decode_str(policy.policy_document()).decode_utf8_lossy().into_owned();
            serde_json::from_str::<serde_json::Value>(&text).expect("policy JSON")
        }
    };
    // The task role may do exactly one thing: hold its own task's scale-in protection.
    let task_policy = role_policy("ivs-relay-task").await;
    assert_eq!(task_policy["Statement"].as_array().map(Vec::len), Some(1), "{task_policy}");
    assert_eq!(task_policy["Statement"][0]["Action"], serde_json::json!(["ecs:UpdateTaskProtection"]));
    assert_eq!(task_policy["Statement"][0]["Resource"], "arn:aws:ecs:us-east-1:123456789012:task/ivs/*");
    // The front door reads the registry, and nothing else of the stack.
    let front_door_policy = role_policy("ivs-front-door").await.to_string();
    assert!(front_door_policy.contains("dynamodb:Scan") && !front_door_policy.contains("PutItem"), "{front_door_policy}");

    // The security group lets in exactly the relays' HTTPS port and the UDP media port.
    let (group, rules) = ingress(&config, "ivs").await;
    assert_eq!(rules, ["tcp 8443-8443 0.0.0.0/0", "tcp 8443-8443 ::/0", "udp 50000-50000 0.0.0.0/0", "udp 50000-50000 ::/0"]);

    // The registry table: on demand, TTL on expires_at.
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb.describe_table().table_name("ivs-relays").send().await.expect("table");
    let table = table.table().expect("table");
    assert_eq!(table.billing_mode_summary().and_then(|b| b.billing_mode()).map(|m| m.as_str()), Some("PAY_PER_REQUEST"));
    let ttl = dynamodb.describe_time_to_live().table_name("ivs-relays").send().await.expect("ttl");
    assert_eq!(ttl.time_to_live_description().and_then(|d| d.attribute_name()), Some("expires_at"));

    // ECS: the service runs the task definition, on Fargate, with public IPs in our group.
    let ecs = aws_sdk_ecs::Client::new(&config);
    let services = ecs.describe_services().cluster("ivs").services("ivs-relay").send().await.expect("service");
    let service = services.services().first().expect("service exists");
    assert_eq!(service.desired_count(), 1);
    assert_eq!(service.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    let vpc = service.network_configuration().and_then(|n| n.awsvpc_configuration()).expect("awsvpc");
    assert_eq!(vpc.security_groups(), [group.group_id().unwrap_or_default().to_owned()]);
    assert_eq!(vpc.assign_public_ip().map(|a| a.as_str()), Some("ENABLED"));
    let task =
        ecs.describe_task_definition().task_definition(service.task_definition().unwrap_or_default()).send().await.expect("task def");
    let container = &task.task_definition().expect("td").container_definitions()[0];
    assert_eq!(container.image(), Some(GIVEN_IMAGE), "--image runs as given");
    // Draining gets Fargate's longest stop timeout; the relay's HTTPS is on an unprivileged port.
    assert_eq!(container.stop_timeout(), Some(120));
    assert_eq!(container.port_mappings().first().and_then(|p| p.container_port()), Some(8443));
    let relay_cert = aws_sdk_ssm::Client::new(&config)
        .get_parameter()
        .name("/ivsctl/ivs/relay-cert")
        .send()
        .await
        .expect("certificate parameter")
        .parameter()
        .and_then(|p| p.value().map(str::to_owned))
        .expect("value");
    assert!(relay_cert.starts_with("-----BEGIN CERTIFICATE-----"), "{relay_cert}");
    let task_env = |name: &str| container.environment().iter().find(|e| e.name() == Some(name)).and_then(|e| e.value());
    assert_eq!(task_env("IVS_RELAY_TLS_CERT_PEM"), Some(relay_cert.as_str()), "the task serves the stack's certificate");
    assert!(container.secrets().iter().any(|s| s.name() == "IVS_RELAY_TLS_KEY_PEM" && s.value_from().ends_with("/ivsctl/ivs/relay-key")));
    assert_eq!(
        container.log_configuration().and_then(|l| l.options()).and_then(|o| o.get("awslogs-group")).map(String::as_str),
        Some("/ivsctl/ivs/relay")
    );

    // Lambda, and the rule that feeds it this cluster's task changes.
    let lambda = aws_sdk_lambda::Client::new(&config);
    let function = lambda.get_function().function_name("ivs-ip-register").send().await.expect("function");
    let env = function.configuration().and_then(|c| c.environment()).and_then(|e| e.variables()).cloned().unwrap_or_default();
    assert_eq!(env.get("REGISTRY_TABLE").map(String::as_str), Some("ivs-relays"));
    let events = aws_sdk_eventbridge::Client::new(&config);
    let rule = events.describe_rule().name("ivs-ecs-task-state").send().await.expect("rule");
    assert!(rule.event_pattern().unwrap_or_default().contains(":cluster/ivs"), "pattern names the cluster");
    let targets = events.list_targets_by_rule().rule("ivs-ecs-task-state").send().await.expect("targets");
    assert_eq!(
        targets.targets().iter().map(|t| t.arn()).collect::<Vec<_>>(),
        [function.configuration().and_then(|c| c.function_arn()).unwrap_or_default()]
    );

    // The front door: the same code, pinning the same certificate, behind a public URL with
    // both grants such a URL needs.
    let front_door = lambda.get_function().function_name("ivs-front-door").send().await.expect("front door");
    let config_of = front_door.configuration().expect("configuration");
    assert_eq!(config_of.code_sha256(), function.configuration().and_then(|c| c.code_sha256()), "one bootstrap for both");
    let env = config_of.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
    assert_eq!(env.get("RELAY_CERT"), Some(&relay_cert));
    assert_eq!(env.get("RELAY_PORT").map(String::as_str), Some("8443"));
    let url = lambda.get_function_url_config().function_name("ivs-front-door").send().await.expect("function URL");
    assert_eq!(url.auth_type().as_str(), "NONE");
    assert!(out.contains(&format!("web app: {}", url.function_url().trim_end_matches('/'))), "deploy prints the URL:\n{out}");
    assert!(out.contains("WHIP (OBS): ") && out.contains("/whip/<stream>"), "{out}");
    let policy = lambda.get_policy().function_name("ivs-front-door").send().await.expect("policy");
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap_or("{}")).expect("policy JSON");
    let actions: Vec<&str> = policy["Statement"].as_array().into_iter().flatten().filter_map(|s| s["Action"].as_str()).collect();
    assert_eq!(actions, ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"], "{policy}");

    // Again: everything unchanged, and not one write call.
    moto.start_recording().await;
    let again = deploy(&moto, "ivs").await;
    let calls = moto.stop_recording().await;
    assert_eq!(with_verb(&again, "unchanged").len(), RESOURCES, "second deploy:\n{again}");
    let writes: Vec<&str> = calls.iter().filter(|c| c.writes()).map(|c| c.action.as_str()).collect();
    assert!(writes.is_empty(), "a deploy of an up-to-date stack wrote: {writes:?}");
    assert!(calls.len() > RESOURCES, "the recorder saw the reads ({} calls)", calls.len());
}

#[tokio::test]
async fn deploy_puts_back_only_what_was_changed_by_hand() {
    let moto = Moto::start().await;
    deploy(&moto, "ivs").await;
    let config = moto.sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    logs.delete_log_group().log_group_name("/ivsctl/ivs/relay").send().await.expect("log group deleted by hand");
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let groups = ec2.describe_security_groups().filters(sg_filter("group-name", "ivs-relay")).send().await.expect("group");
    let group_id = groups.security_groups()[0].group_id().unwrap_or_default().to_owned();
    let ssh = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build();
    ec2.authorize_security_group_ingress().group_id(&group_id).ip_permissions(ssh).send().await.expect("ssh opened by hand");
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let ttl_off =
        aws_sdk_dynamodb::types::TimeToLiveSpecification::builder().enabled(false).attribute_name("expires_at").build().expect("spec");
    dynamodb.update_time_to_live().table_name("ivs-relays").time_to_live_specification(ttl_off).send().await.expect("ttl off by hand");

    let out = deploy(&moto, "ivs").await;
    assert_eq!(with_verb(&out, "created"), ["log group /ivsctl/ivs/relay"], "{out}");
    let mut updated = with_verb(&out, "updated");
    updated.sort();
    assert_eq!(updated, ["DynamoDB table ivs-relays", "security group ivs-relay"], "{out}");
    assert!(out.contains("removed ingress tcp/22 from 0.0.0.0/0"), "the reason is given:\n{out}");
    assert_eq!(with_verb(&out, "unchanged").len(), RESOURCES - 3, "{out}");

    let groups = ec2.describe_security_groups().group_ids(&group_id).send().await.expect("group");
    assert!(groups.security_groups()[0].ip_permissions().iter().all(|p| p.from_port() != Some(22)), "ssh closed again");
    let ttl = dynamodb.describe_time_to_live().table_name("ivs-relays").send().await.expect("ttl");
    assert_eq!(ttl.time_to_live_description().and_then(|d| d.time_to_live_status()).map(|s| s.as_str()), Some("ENABLED"));
    let again = deploy(&moto, "ivs").await;
    assert_eq!(with_verb(&again, "unchanged").len(), RESOURCES, "repaired stack is stable:\n{again}");
}

#[tokio::test]
async fn a_dry_run_reports_the_plan_and_writes_nothing() {
    let moto = Moto::start().await;
    moto.start_recording().await;
    let out = assert_ok(&ivsctl(&moto, &["deploy", "--dry-run"]).await);
    let calls = moto.stop_recording().await;
    assert_eq!(with_verb(&out, "create").len(), RESOURCES, "{out}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    let writes: Vec<&str> = calls.iter().filter(|c| c.writes()).map(|c| c.action.as_str()).collect();
    assert!(writes.is_empty(), "a dry run wrote: {writes:?}");

    // A dry run of a change names it, and leaves it undone.
    deploy(&moto, "ivs").await;
    let out = assert_ok(&ivsctl(&moto, &["deploy", "--dry-run", "--tasks", "3", "--log-retention-days", "7"]).await);
    assert!(out.contains("update     ECS service ivs-relay: desired count 1 → 3"), "{out}");
    assert!(out.contains("retention 30 → 7 days"), "{out}");
    let status = status_json(&moto, "ivs").await;
    assert_eq!(status["service"]["desired"], 1);
}

#[tokio::test]
async fn stacks_side_by_side_and_teardown_removes_only_what_is_tagged() {
    let moto = Moto::start().await;
    deploy(&moto, "a").await;
    deploy(&moto, "b").await;
    assert_eq!(present(&status_json(&moto, "a").await).len(), STATUS_RESOURCES);

    // Look-alikes with stack c's names but not its tag: deploy refuses them, teardown spares them.
    let config = moto.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&config);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role().role_name("c-relay-task").assume_role_policy_document(trust).send().await.expect("look-alike role");
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    logs.create_log_group().log_group_name("/ivsctl/c/relay").send().await.expect("look-alike log group");
    let refused = ivsctl(&moto, &["--stack", "c", "deploy", "--no-wait"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("log group /ivsctl/c/relay") && stderr(&refused).contains("not tagged ivsctl:stack=c"),
        "{}",
        stderr(&refused)
    );

    let out = assert_ok(&ivsctl(&moto, &["--stack", "a", "teardown", "--yes"]).await);
    assert_eq!(with_verb(&out, "deleted").len(), TEARDOWN_STEPS, "{out}");
    let a = status_json(&moto, "a").await;
    assert!(present(&a).is_empty(), "stack a is gone: {a:#}");
    let b = status_json(&moto, "b").await;
    assert_eq!(present(&b).len(), STATUS_RESOURCES, "stack b is untouched: {b:#}");
    let b_again = deploy(&moto, "b").await;
    assert_eq!(with_verb(&b_again, "unchanged").len(), RESOURCES, "{b_again}");

    let twice = assert_ok(&ivsctl(&moto, &["--stack", "a", "teardown", "--yes"]).await);
    assert_eq!(with_verb(&twice, "absent").len(), TEARDOWN_LINES, "second teardown finds nothing:\n{twice}");

    // Stack c's teardown deletes what c made (part of the roles and groups) and skips the look-alikes.
    let out = assert_ok(&ivsctl(&moto, &["--stack", "c", "teardown", "--yes"]).await);
    let mut skipped = with_verb(&out, "skipped");
    skipped.sort();
    assert_eq!(skipped, ["IAM role c-relay-task", "log group /ivsctl/c/relay"], "{out}");
    iam.get_role().role_name("c-relay-task").send().await.expect("the untagged role survives");
    let groups = logs.describe_log_groups().log_group_name_prefix("/ivsctl/c/relay").send().await.expect("groups");
    assert_eq!(groups.log_groups().len(), 1, "the untagged log group survives");
}

#[tokio::test]
async fn scale_sets_the_count_status_shows_the_stack_and_a_stuck_deploy_says_why() {
    let moto = Moto::start().await;
    deploy(&moto, "ivs").await;
    let out = assert_ok(&ivsctl(&moto, &["scale", "--tasks", "3", "--no-wait"]).await);
    assert!(out.contains("set to 3 (not waiting)"), "{out}");

    // A relay the Lambda registered (on loopback, where nothing serves HTTPS).
    let config = moto.sdk_config().await;
    let registry = ivs_ip_register::registry::Registry::new(aws_sdk_dynamodb::Client::new(&config), "ivs-relays");
    let event: ivs_ip_register::event::TaskEvent = serde_json::from_value(serde_json::json!({
        "version": "0", "id": "1", "detail-type": "ECS Task State Change", "source": "aws.ecs", "account": "123456789012",
        "time": "2026-11-25T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": { "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/ivs", "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/ivs/abc",
                    "lastStatus": "RUNNING", "version": 3, "attachments": [] }
    }))
    .expect("event");
    let ivs_ip_register::event::Decision::Running(task) =
        ivs_ip_register::event::decide(&event, "arn:aws:ecs:us-east-1:123456789012:cluster/ivs")
    else {
        panic!("a RUNNING event");
    };
    let addresses = ivs_ip_register::network::Addresses { public_ip: Some("127.0.0.1".into()), private_ip: Some("10.0.0.9".into()) };
    registry.record_running(&task, &addresses).await.expect("registered");

    // moto reports a scaled service's tasks as running at once: the wait ends, the registry is read.
    let out = assert_ok(&ivsctl(&moto, &["scale", "--tasks", "2"]).await);
    assert!(out.contains("scale: 2 of 2 tasks running; the registry lists 1"), "{out}");

    let status = status_json(&moto, "ivs").await;
    assert_eq!(present(&status).len(), STATUS_RESOURCES, "{status:#}");
    assert_eq!(status["service"]["desired"], 2);
    assert_eq!(status["relays"][0]["public_ip"], "127.0.0.1");
    assert!(status["relays"][0]["health"].as_str().unwrap_or_default().starts_with("unreachable"), "{status:#}");
    let text = assert_ok(&ivsctl(&moto, &["status"]).await);
    assert!(text.contains("relay 127.0.0.1: unreachable"), "{text}");
    assert!(text.contains("web app: https://") && text.contains("WHIP (OBS): https://"), "status shows the front door:\n{text}");
    assert!(status["whip"].as_str().is_some_and(|w| w.ends_with("/whip/<stream>")), "{status:#}");

    // A new service's tasks never start in moto: a waiting deploy ends at its timeout, saying so.
    let stuck = ivsctl(&moto, &["--stack", "slow", "deploy", "--timeout", "6s"]).await;
    assert_eq!(stuck.status.code(), Some(1), "{}", stderr(&stuck));
    let error = stderr(&stuck);
    assert!(error.contains("relay tasks did not come up") && error.contains("0 of 1 tasks running after 6 s"), "{error}");
    assert_eq!(error.trim().lines().count(), 1, "one line: {error}");
    // (All but the account's service-linked role, which the first stack made.)
    assert_eq!(with_verb(&stdout(&stuck), "created").len(), RESOURCES - 1, "the stack itself was deployed");
}

/// Arguments, environment changes (empty: unset), and what the error must say.
type Case = (Vec<&'static str>, Vec<(&'static str, String)>, &'static str);

#[tokio::test]
async fn bad_input_is_one_clear_line_and_exit_code_1() {
    let moto = Moto::start().await;
    let home = tempfile::tempdir().expect("home");
    let cases: Vec<Case> = vec![
        (vec!["--region", "nowhere-1", "status"], vec![("AWS_ENDPOINT_URL", String::new())], "unknown region \"nowhere-1\""),
        (vec!["deploy", "--cpu", "1024", "--memory", "512", "--image", GIVEN_IMAGE], vec![], "2048 to 8192 in steps of 1024"),
        (vec!["--region", "eu-north-1", "deploy", "--ivs", "--image", GIVEN_IMAGE], vec![], "Amazon IVS does not run in eu-north-1"),
        (
            vec![
                "--region",
                "eu-north-1",
                "deploy",
                "--ivs-channel",
                "arn:aws:ivs:eu-north-1:123456789012:channel/x",
                "--image",
                GIVEN_IMAGE,
            ],
            vec![],
            "choose one of ap-northeast-1",
        ),
        (vec!["--endpoint-url", "http://127.0.0.1:9", "status"], vec![], "cannot reach AWS"),
        (vec!["status"], vec![("AWS_ACCESS_KEY_ID", String::new()), ("AWS_SECRET_ACCESS_KEY", String::new())], "no usable AWS credentials"),
        (vec!["deploy", "--cpu", "300", "--image", GIVEN_IMAGE], vec![], "Fargate tasks take"),
        (vec!["deploy", "--log-retention-days", "31"], vec![], "CloudWatch Logs keeps logs"),
        (vec!["--stack", "Bad_Name", "status"], vec![], "a stack name is"),
        (vec!["deploy", "--lambda-bootstrap", "/nonexistent/bootstrap"], vec![], "cannot read the Lambda's bootstrap"),
        (vec!["deploy", "--lambda-bootstrap", env!("CARGO_BIN_EXE_ivsctl")], vec![], "is dynamically linked"),
        (vec!["deploy", "--relay-binary", "/nonexistent/ivs-relay"], vec![], "cannot read the relay binary"),
        (vec!["deploy", "--relay-binary", env!("CARGO_BIN_EXE_ivsctl")], vec![], "is dynamically linked"),
        (vec!["teardown"], vec![], "pass --yes"),
    ];
    moto.start_recording().await;
    for (args, env, expected) in cases {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ivsctl"));
        command.args(&args).envs(moto.env()).env("HOME", home.path()).env("AWS_CONFIG_FILE", home.path().join("none"));
        command.env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none")).stdin(std::process::Stdio::null());
        for (name, value) in &env {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        let output = command.output().await.expect("ivsctl runs");
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {error}");
        assert!(error.contains(expected), "{args:?}: expected {expected:?} in {error:?}");
        assert_eq!(error.trim().lines().count(), 1, "{args:?}: one line, got {error:?}");
        assert!(stdout(&output).is_empty(), "{args:?}: nothing on stdout, got {:?}", stdout(&output));
    }
    let writes: Vec<String> = moto.stop_recording().await.into_iter().filter(|c| c.writes()).map(|c| c.action).collect();
    // GetCallerIdentity is the only call any of them may make; it reads.
    assert!(writes.is_empty(), "bad input wrote: {writes:?}");
}

#[tokio::test]
async fn deploy_with_ivs_keeps_the_stream_key_and_token_in_ssm_and_out_of_sight() {
    let moto = Moto::start().await;
    let out = assert_ok(&ivsctl(&moto, &["deploy", "--ivs", "--no-wait"]).await);
    assert_eq!(with_verb(&out, "created").len(), RESOURCES + 3, "channel and two more parameters:\n{out}");
    let config = moto.sdk_config().await;

    let ssm = aws_sdk_ssm::Client::new(&config);
    let mut secrets = Vec::new();
    for name in ["/ivsctl/ivs/token", "/ivsctl/ivs/destination"] {
        let found = ssm.get_parameter().name(name).with_decryption(true).send().await.expect(name);
        let parameter = found.parameter().expect("parameter");
        assert_eq!(parameter.r#type().map(|t| t.as_str()), Some("SecureString"), "{name}");
        secrets.push(parameter.value().unwrap_or_default().to_owned());
    }
    let (token, destination) = (secrets[0].clone(), secrets[1].clone());
    assert_eq!(token.len(), 64, "a 256-bit token");
    let stream_key = destination.rsplit_once("/app/").map(|(_, k)| k.to_owned()).expect("rtmps://ingest:443/app/KEY");
    assert!(destination.starts_with("rtmps://") && destination.contains(":443/app/sk_"), "IVS destination");

    // The task definition points at the parameters and holds neither secret.
    let ecs = aws_sdk_ecs::Client::new(&config);
    let task = ecs.describe_task_definition().task_definition("ivs-relay").send().await.expect("task definition");
    let container = &task.task_definition().expect("td").container_definitions()[0];
    let mut refs: Vec<(String, String)> = container.secrets().iter().map(|s| (s.name().to_owned(), s.value_from().to_owned())).collect();
    refs.sort();
    assert_eq!(
        refs,
        [
            ("IVS_RELAY_DESTINATION".to_owned(), "arn:aws:ssm:us-east-1:123456789012:parameter/ivsctl/ivs/destination".to_owned()),
            ("IVS_RELAY_TLS_KEY_PEM".to_owned(), "arn:aws:ssm:us-east-1:123456789012:parameter/ivsctl/ivs/relay-key".to_owned()),
            ("IVS_RELAY_TOKEN".to_owned(), "arn:aws:ssm:us-east-1:123456789012:parameter/ivsctl/ivs/token".to_owned()),
        ]
    );
    let text = format!("{task:?}");
    assert!(!text.contains(&token) && !text.contains(&stream_key), "no secret in the task definition");
    assert!(container.environment().iter().any(|e| e.name() == Some("IVS_RELAY_PLAYBACK_URL")), "playback URL for the web app");
    let iam = aws_sdk_iam::Client::new(&config);
    let policy = iam.get_role_policy().role_name("ivs-relay-execution").policy_name("ivsctl").send().await.expect("policy");
    let policy = percent_encoding::percent_decode_str(policy.policy_document()).decode_utf8_lossy().into_owned();
    assert!(policy.contains("parameter/ivsctl/ivs/token") && policy.contains("parameter/ivsctl/ivs/destination"), "{policy}");

    // status: the playback URL, never a secret unless asked.
    let status = assert_ok(&ivsctl(&moto, &["status"]).await);
    assert!(status.contains("playback: https://"), "{status}");
    assert!(!status.contains(&token) && !status.contains(&stream_key), "status shows no secret:\n{status}");
    let json = status_json(&moto, "ivs").await;
    assert!(!json.to_string().contains(&token) && !json.to_string().contains(&stream_key));
    let shown = assert_ok(&ivsctl(&moto, &["status", "--show-token", "--show-stream-key"]).await);
    assert!(shown.contains(&format!("token: {token}")) && shown.contains(&format!("stream key: {stream_key}")), "{shown}");
    for output in [&out, &status] {
        assert!(!output.contains(&token) && !output.contains(&stream_key));
    }

    // Unchanged again (IVS remembered without --ivs); then a rotated token.
    let again = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait"]).await);
    assert_eq!(with_verb(&again, "unchanged").len(), RESOURCES + 3, "{again}");
    let rotated = assert_ok(&ivsctl(&moto, &["deploy", "--rotate-token", "--no-wait"]).await);
    assert_eq!(with_verb(&rotated, "updated"), ["SSM parameter /ivsctl/ivs/token"], "{rotated}");
    let new_token = ssm.get_parameter().name("/ivsctl/ivs/token").with_decryption(true).send().await.expect("token");
    assert_ne!(new_token.parameter().and_then(|p| p.value()), Some(token.as_str()));

    // Teardown deletes the channel ivsctl made and every parameter.
    let down = assert_ok(&ivsctl(&moto, &["teardown", "--yes"]).await);
    assert_eq!(with_verb(&down, "deleted").len(), TEARDOWN_STEPS + 3, "{down}");
    let ivs = aws_sdk_ivs::Client::new(&config);
    assert!(ivs.list_channels().send().await.expect("channels").channels().is_empty(), "the channel is gone");
}

#[tokio::test]
async fn the_registry_lambda_is_wired_before_the_service_and_the_linked_role_is_made_once() {
    let moto = Moto::start().await;
    moto.start_recording().await;
    deploy(&moto, "ivs").await;
    let calls: Vec<String> = moto.stop_recording().await.iter().map(|c| c.iam_action()).collect();
    let at = |action: &str| calls.iter().position(|c| c == action).unwrap_or_else(|| panic!("{action} in {calls:?}"));
    // A task that starts before the rule and the permission exist sends a RUNNING event nobody gets.
    for before in ["lambda:CreateFunction", "events:PutRule", "events:PutTargets", "lambda:AddPermission"] {
        assert!(at(before) < at("ecs:CreateService"), "{before} before ecs:CreateService: {calls:?}");
    }
    assert!(at("iam:CreateServiceLinkedRole") < at("ecs:CreateCluster"), "{calls:?}");
    assert_eq!(calls.iter().filter(|c| *c == "iam:CreateServiceLinkedRole").count(), 1);

    // The second deploy of the same stack (or another stack in the account) writes nothing, and
    // finds the service-linked role it made.
    moto.start_recording().await;
    let again = deploy(&moto, "ivs").await;
    let writes: Vec<String> = moto.stop_recording().await.into_iter().filter(|c| c.writes()).map(|c| c.iam_action()).collect();
    assert!(writes.is_empty(), "a second deploy wrote: {writes:?}\n{again}");
    let other = deploy(&moto, "other").await;
    assert!(with_verb(&other, "unchanged").contains(&"ECS service-linked role".to_owned()), "{other}");
}

#[tokio::test]
async fn a_waiting_deploy_succeeds_only_when_the_primary_deployment_completes_on_the_new_revision() {
    // moto reports a new service's tasks running (here) but never moves its PRIMARY deployment to
    // a later revision: exactly what ECS shows after the circuit breaker rolled a revision back.
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]).await;
    let out = assert_ok(&ivsctl(&moto, &["--json", "deploy", "--timeout", "30s"]).await);
    let document: serde_json::Value = serde_json::from_str(&out).expect("deploy --json is JSON");
    assert_eq!(document["service"]["deployments"][0]["rollout"], "COMPLETED", "{document:#}");

    let rolled_back = ivsctl(&moto, &["deploy", "--udp-port", "50001", "--timeout", "30s"]).await;
    assert_eq!(rolled_back.status.code(), Some(1));
    let error = stderr(&rolled_back);
    assert!(error.contains("relay tasks did not come up") && error.contains("runs ivs-relay:1 instead of ivs-relay:2"), "{error}");
    assert_eq!(error.trim().lines().count(), 1, "one line: {error}");
    // Tasks on revision 1 still listen on 50000: it stays open.
    assert_eq!(media_ports(&moto.sdk_config().await, "ivs").await, ["50000-50000", "50000-50000", "50001-50001", "50001-50001"]);
}

#[tokio::test]
async fn status_and_scale_list_a_running_task_the_registry_lacks() {
    let moto = Moto::start().await;
    deploy(&moto, "ivs").await;
    let config = moto.sdk_config().await;
    // A relay task whose RUNNING event never reached the Lambda. moto starts no task for a service
    // and lists every task of the cluster for one, so a task run by hand plays it (of a family of
    // its own: moto's RunTask needs per-container memory, which the relay's does not set).
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let subnets = ec2.describe_subnets().filters(sg_filter("default-for-az", "true")).send().await.expect("subnets");
    let subnet = subnets.subnets()[0].subnet_id().expect("subnet").to_owned();
    let (group, _) = ingress(&config, "ivs").await;
    let vpc = aws_sdk_ecs::types::AwsVpcConfiguration::builder()
        .subnets(subnet)
        .security_groups(group.group_id().unwrap_or_default())
        .build()
        .expect("vpc configuration");
    // moto moves a task on towards STOPPED at each DescribeTasks unless told to keep it running.
    let keep_running = serde_json::json!({ "model_name": "ecs::task", "transition": { "progression": "manual", "times": 1000 } });
    let response = reqwest::Client::new()
        .post(format!("{}/moto-api/state-manager/set-transition", moto.endpoint))
        .json(&keep_running)
        .send()
        .await
        .expect("moto state manager");
    assert!(response.status().is_success());
    let ecs = aws_sdk_ecs::Client::new(&config);
    let container = aws_sdk_ecs::types::ContainerDefinition::builder().name("relay").image(GIVEN_IMAGE).memory(512).cpu(256).build();
    ecs.register_task_definition()
        .family("stand-in")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(container)
        .send()
        .await
        .expect("stand-in task definition");
    let run = ecs
        .run_task()
        .cluster("ivs")
        .task_definition("stand-in")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(aws_sdk_ecs::types::NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
        .send()
        .await
        .expect("task runs");
    let task_arn = run.tasks()[0].task_arn().expect("task").to_owned();

    let status = status_json(&moto, "ivs").await;
    let relays = status["relays"].as_array().expect("relays");
    assert_eq!(relays.len(), 1, "{status:#}");
    assert_eq!(relays[0]["task_arn"], task_arn.as_str());
    assert_eq!(relays[0]["note"], "not in the registry: found through ECS");
    // Its network interface has no public address, so nothing is probed.
    assert_eq!(relays[0]["health"], "no public address");
    assert!(relays[0]["private_ip"].is_string(), "the address comes from the task's ENI: {status:#}");
    let text = assert_ok(&ivsctl(&moto, &["status"]).await);
    assert!(text.contains("not in the registry: found through ECS"), "{text}");
    let out = assert_ok(&ivsctl(&moto, &["scale", "--tasks", "1"]).await);
    assert!(out.contains("the registry lists 0") && out.contains("1 more running per ECS"), "{out}");
}

/// The resource names of a deploy's or teardown's `--json` document, with their changes.
fn plan(document: &serde_json::Value) -> Vec<(String, String)> {
    document["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| (r["resource"].as_str().unwrap_or_default().to_owned(), r["change"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

async fn json_of(moto: &Moto, args: &[&str]) -> serde_json::Value {
    let out = assert_ok(&ivsctl(moto, args).await);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} prints JSON ({e}):\n{out}"))
}

#[tokio::test]
async fn a_dry_run_plan_is_a_json_document_in_the_order_deploy_status_and_teardown_share() {
    let moto = Moto::start().await;
    let scaled = ["--min-tasks", "1", "--max-tasks", "3"];
    let fresh = json_of(&moto, &[&["--json", "deploy", "--dry-run"][..], &scaled].concat()).await;
    assert_eq!(fresh["dry_run"], true);
    let planned = plan(&fresh);
    assert_eq!(planned.len(), RESOURCES + AUTOSCALING, "{fresh:#}");
    assert!(planned.iter().all(|(_, change)| change == "create"), "{fresh:#}");

    assert_ok(&ivsctl(&moto, &[&["deploy", "--no-wait"][..], &scaled].concat()).await);
    let live = json_of(&moto, &["--json", "deploy", "--dry-run", "--tasks", "3", "--log-retention-days", "7"]).await;
    let changes: Vec<&serde_json::Value> =
        live["resources"].as_array().expect("resources").iter().filter(|r| r["change"] != "no_op").collect();
    let named: Vec<(&str, &str)> =
        changes.iter().map(|r| (r["resource"].as_str().unwrap_or_default(), r["reasons"][0].as_str().unwrap_or_default())).collect();
    assert_eq!(
        named,
        [
            ("log group /ivsctl/ivs/relay", "retention 30 → 7 days"),
            ("log group /aws/lambda/ivs-ip-register", "retention 30 → 7 days"),
            ("log group /aws/lambda/ivs-front-door", "retention 30 → 7 days"),
            ("ECS service ivs-relay", "desired count 1 → 3")
        ],
        "{live:#}"
    );

    // One order: the plan's (the stack's resources of it), status's, and teardown's reversed.
    let stack_resources: Vec<String> = planned.iter().map(|(r, _)| r.clone()).filter(|r| r != "ECS service-linked role").collect();
    let status = status_json(&moto, "ivs").await;
    let shown: Vec<String> =
        status["resources"].as_array().expect("resources").iter().map(|r| r["resource"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(shown, stack_resources);
    let teardown = json_of(&moto, &["--json", "teardown", "--dry-run"]).await;
    let mut deleted: Vec<String> = plan(&teardown)
        .into_iter()
        .map(|(r, change)| {
            assert_eq!(change, "delete");
            r
        })
        .collect();
    deleted.reverse();
    assert_eq!(deleted, stack_resources);
}

#[tokio::test]
async fn ivsctl_policy_grants_every_action_deploy_status_scale_and_teardown_take() {
    let moto = Moto::start().await;
    moto.start_recording().await;
    for args in [
        &["deploy", "--ivs", "--no-wait"][..],
        &["deploy", "--rotate-token", "--log-retention-days", "7", "--no-wait"],
        &["status", "--show-token"],
        &["scale", "--tasks", "2", "--no-wait"],
        &["teardown", "--yes"],
    ] {
        assert_ok(&ivsctl(&moto, args).await);
    }
    let mut called: Vec<String> = moto.stop_recording().await.iter().map(|c| c.iam_action()).collect();
    called.sort();
    called.dedup();

    let out = assert_ok(&ivsctl(&moto, &["--region", "us-east-1", "policy", "--account", "123456789012"]).await);
    let policy: serde_json::Value = serde_json::from_str(&out).expect("policy is JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().expect("statements");
    for statement in statements {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        assert!(statement["Action"].as_array().is_some_and(|a| !a.is_empty()) && statement["Resource"].is_array(), "{statement}");
    }
    let granted: Vec<&str> =
        statements.iter().flat_map(|s| s["Action"].as_array().into_iter().flatten()).filter_map(|a| a.as_str()).collect();
    let missing: Vec<&String> = called.iter().filter(|c| !granted.contains(&c.as_str())).collect();
    assert!(missing.is_empty(), "called but not in `ivsctl policy`: {missing:?}");
    assert!(out.contains("arn:aws:iam::123456789012:role/ivs-relay-execution") && out.contains("iam:PassedToService"), "{out}");
}

#[tokio::test]
async fn drift_that_cannot_change_in_place_is_replaced_once_not_updated_forever() {
    let moto = Moto::start().await;
    deploy(&moto, "ivs").await;
    // The registry table made again by hand with another key (and the stack's tag).
    let config = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    dynamodb.delete_table().table_name("ivs-relays").send().await.expect("table deleted by hand");
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Tag};
    dynamodb
        .create_table()
        .table_name("ivs-relays")
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build().expect("attribute"),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().expect("key"))
        .billing_mode(BillingMode::PayPerRequest)
        .tags(Tag::builder().key("ivsctl:stack").value("ivs").build().expect("tag"))
        .send()
        .await
        .expect("look-alike table");

    let out = deploy(&moto, "ivs").await;
    assert_eq!(with_verb(&out, "replaced"), ["DynamoDB table ivs-relays"], "{out}");
    assert!(out.contains("keyed by id (HASH) instead of task_arn (HASH)"), "{out}");
    let table = dynamodb.describe_table().table_name("ivs-relays").send().await.expect("table");
    let key: Vec<&str> = table.table().expect("table").key_schema().iter().map(|k| k.attribute_name()).collect();
    assert_eq!(key, ["task_arn"]);
    let again = deploy(&moto, "ivs").await;
    assert_eq!(with_verb(&again, "unchanged").len(), RESOURCES, "replaced once, then stable:\n{again}");
}

#[tokio::test]
async fn a_front_door_url_or_grant_removed_by_hand_is_put_back_and_nothing_else_written() {
    let moto = Moto::start().await;
    deploy(&moto, "ivs").await;
    let lambda = aws_sdk_lambda::Client::new(&moto.sdk_config().await);
    let before = lambda.get_function_url_config().function_name("ivs-front-door").send().await.expect("url").function_url().to_owned();
    lambda.delete_function_url_config().function_name("ivs-front-door").send().await.expect("delete url");
    lambda.remove_permission().function_name("ivs-front-door").statement_id("ivsctl-ivs-public-url-invoke").send().await.expect("revoke");

    let out = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait"]).await);
    assert_eq!(with_verb(&out, "created").len(), 2, "{out}");
    assert!(out.contains("created    Function URL of ivs-front-door"), "{out}");
    assert!(out.contains("created    public lambda:InvokeFunction permission of ivs-front-door"), "{out}");
    assert_eq!(with_verb(&out, "unchanged").len(), RESOURCES - 2, "{out}");
    let after = lambda.get_function_url_config().function_name("ivs-front-door").send().await.expect("url again").function_url().to_owned();
    assert!(out.contains(&format!("web app: {}", after.trim_end_matches('/'))), "the new URL is printed:\n{out}");
    // A Function URL made again has a new address (the README says so): deploy shows it.
    assert_ne!(before, after);
}

#[tokio::test]
async fn autoscaling_bounds_and_cpu_target_are_registered_kept_changed_and_enforced_by_scale() {
    let moto = Moto::start().await;
    let out = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait", "--min-tasks", "1", "--max-tasks", "4"]).await);
    assert!(out.contains("created    autoscaling target service/ivs/ivs-relay"), "{out}");
    assert!(out.contains("created    autoscaling policy ivs-relay-cpu"), "{out}");
    let autoscaling = aws_sdk_applicationautoscaling::Client::new(&moto.sdk_config().await);
    let targets = autoscaling
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .expect("targets");
    let [target] = targets.scalable_targets() else { panic!("one target: {targets:?}") };
    assert_eq!((target.resource_id(), target.min_capacity(), target.max_capacity()), ("service/ivs/ivs-relay", 1, 4));
    let policies = autoscaling
        .describe_scaling_policies()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .expect("policies");
    let [policy] = policies.scaling_policies() else { panic!("one policy: {policies:?}") };
    let tracking = policy.target_tracking_scaling_policy_configuration().expect("target tracking");
    assert_eq!(tracking.target_value(), 60.0);
    assert_eq!(
        tracking.predefined_metric_specification().map(|m| m.predefined_metric_type().as_str()),
        Some("ECSServiceAverageCPUUtilization")
    );

    // Without the flags the bounds stay; a new target changes the policy alone.
    let again = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait"]).await);
    assert_eq!(with_verb(&again, "unchanged").len(), RESOURCES, "{again}");
    let cpu = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait", "--min-tasks", "1", "--max-tasks", "4", "--target-cpu", "50"]).await);
    assert_eq!(with_verb(&cpu, "updated"), ["autoscaling policy ivs-relay-cpu"], "{cpu}");

    // scale works within the bounds and refuses outside them, saying how to change them.
    let refused = ivsctl(&moto, &["scale", "--tasks", "9", "--no-wait"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("outside the autoscaling bounds") && stderr(&refused).contains("1..4"), "{}", stderr(&refused));
    assert_ok(&ivsctl(&moto, &["scale", "--tasks", "3", "--no-wait"]).await);
    let bad = ivsctl(&moto, &["deploy", "--min-tasks", "5", "--max-tasks", "2"]).await;
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));

    let down = assert_ok(&ivsctl(&moto, &["teardown", "--yes"]).await);
    assert!(down.contains("deleted    autoscaling target") && down.contains("deleted    autoscaling policy"), "{down}");
    let left = autoscaling
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .expect("targets");
    assert!(left.scalable_targets().is_empty(), "{left:?}");
}

#[tokio::test]
async fn rotate_relay_cert_makes_a_new_key_pair_that_the_task_and_the_front_door_both_get() {
    let moto = Moto::start().await;
    deploy(&moto, "ivs").await;
    let config = moto.sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let read = |name: &'static str| {
        let ssm = ssm.clone();
        async move {
            let found = ssm.get_parameter().name(name).with_decryption(true).send().await.expect(name);
            found.parameter().and_then(|p| p.value().map(str::to_owned)).expect("value")
        }
    };
    let (cert, key) = (read("/ivsctl/ivs/relay-cert").await, read("/ivsctl/ivs/relay-key").await);
    assert!(key.contains("PRIVATE KEY"));

    let out = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait", "--rotate-relay-cert"]).await);
    let (new_cert, new_key) = (read("/ivsctl/ivs/relay-cert").await, read("/ivsctl/ivs/relay-key").await);
    assert!(new_cert != cert && new_key != key, "a new pair");
    assert!(out.contains("updated    SSM parameter /ivsctl/ivs/relay-cert"), "{out}");
    assert!(!out.contains(&new_key) && !out.contains("PRIVATE KEY"), "the key is never printed:\n{out}");
    let lambda = aws_sdk_lambda::Client::new(&config);
    let front_door = lambda.get_function().function_name("ivs-front-door").send().await.expect("front door");
    let env = front_door.configuration().and_then(|c| c.environment()).and_then(|e| e.variables()).cloned().unwrap_or_default();
    assert_eq!(env.get("RELAY_CERT"), Some(&new_cert), "the front door pins the new certificate");
    let ecs = aws_sdk_ecs::Client::new(&config);
    let task = ecs.describe_task_definition().task_definition("ivs-relay").send().await.expect("task definition");
    let container = &task.task_definition().expect("td").container_definitions()[0];
    let served = container.environment().iter().find(|e| e.name() == Some("IVS_RELAY_TLS_CERT_PEM")).and_then(|e| e.value());
    assert_eq!(served, Some(new_cert.as_str()), "the new revision serves it");
    // And without the flag the pair stays.
    let again = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait"]).await);
    assert!(again.contains("unchanged  SSM parameter /ivsctl/ivs/relay-key"), "{again}");
    assert_eq!(read("/ivsctl/ivs/relay-cert").await, new_cert);
}

#[tokio::test]
async fn extra_destinations_are_secret_parameters_the_task_reads_kept_replaced_and_removed() {
    let moto = Moto::start().await;
    let twitch = "rtmps://live.twitch.tv:443/app/live_1234_s3cr3t";
    let youtube = "rtmps://a.rtmps.youtube.com:443/live2/abcd-s3cr3t-yt";
    let out = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait", "--extra-destination", twitch, "--extra-destination", youtube]).await);
    assert_eq!(with_verb(&out, "created").len(), RESOURCES + 2, "two more parameters:\n{out}");
    let config = moto.sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    for (n, url) in [(1, twitch), (2, youtube)] {
        let name = format!("/ivsctl/ivs/extra-destination-{n}");
        let found = ssm.get_parameter().name(&name).with_decryption(true).send().await.expect("parameter");
        let parameter = found.parameter().expect("parameter");
        assert_eq!(parameter.r#type().map(|t| t.as_str()), Some("SecureString"), "{name}");
        assert_eq!(parameter.value(), Some(url));
    }

    // The task reads them as the relay's destination variables, in order; nothing shows a key.
    let secret_refs = || async {
        let ecs = aws_sdk_ecs::Client::new(&config);
        let task = ecs.describe_task_definition().task_definition("ivs-relay").send().await.expect("task definition");
        let text = format!("{task:?}");
        assert!(!text.contains("s3cr3t"), "a key in the task definition");
        let container = &task.task_definition().expect("td").container_definitions()[0];
        let mut refs: Vec<(String, String)> = container
            .secrets()
            .iter()
            .filter(|s| s.name().starts_with("IVS_RELAY_DESTINATION"))
            .map(|s| (s.name().to_owned(), s.value_from().rsplit('/').next().unwrap_or_default().to_owned()))
            .collect();
        refs.sort();
        refs
    };
    let pair = |name: &str, parameter: &str| (name.to_owned(), parameter.to_owned());
    assert_eq!(
        secret_refs().await,
        [pair("IVS_RELAY_DESTINATION", "extra-destination-1"), pair("IVS_RELAY_DESTINATION_2", "extra-destination-2")]
    );
    let status = assert_ok(&ivsctl(&moto, &["status"]).await);
    assert!(status.contains("/ivsctl/ivs/extra-destination-2") && !status.contains("s3cr3t"), "{status}");
    assert!(!out.contains("s3cr3t"), "{out}");

    // Kept by a deploy that does not name them; made exactly the named ones; removed.
    let again = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait"]).await);
    assert_eq!(with_verb(&again, "unchanged").len(), RESOURCES + 2, "{again}");
    let one = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait", "--extra-destination", youtube]).await);
    assert_eq!(with_verb(&one, "deleted"), ["SSM parameter /ivsctl/ivs/extra-destination-2"], "{one}");
    assert!(with_verb(&one, "updated").contains(&"SSM parameter /ivsctl/ivs/extra-destination-1".to_owned()), "{one}");
    assert_eq!(secret_refs().await, [pair("IVS_RELAY_DESTINATION", "extra-destination-1")]);
    let none = assert_ok(&ivsctl(&moto, &["deploy", "--no-wait", "--no-extra-destinations"]).await);
    assert_eq!(with_verb(&none, "deleted"), ["SSM parameter /ivsctl/ivs/extra-destination-1"], "{none}");
    assert!(secret_refs().await.is_empty());

    // Refused before any AWS call: a file, a URL without a key, more than a relay takes.
    for (args, expected) in [
        (vec!["--extra-destination", "file://rec.flv"], "no disk to record to"),
        (vec!["--extra-destination", "rtmp://host.example/s3cr3t"], "/app/streamkey"),
        (vec!["--ivs"; 1].into_iter().chain(std::iter::repeat_n(["--extra-destination", youtube], 5).flatten()).collect(), "at most 5"),
    ] {
        let refused = ivsctl(&moto, &[&["deploy", "--no-wait"][..], &args].concat()).await;
        assert!(!refused.status.success());
        let error = stderr(&refused);
        assert!(error.contains(expected) && !error.contains("s3cr3t"), "{error}");
    }

    // Teardown finds them.
    assert_ok(&ivsctl(&moto, &["deploy", "--no-wait", "--extra-destination", twitch]).await);
    let down = assert_ok(&ivsctl(&moto, &["teardown", "--yes"]).await);
    assert!(with_verb(&down, "deleted").contains(&"SSM parameter /ivsctl/ivs/extra-destination-1".to_owned()), "{down}");
}
