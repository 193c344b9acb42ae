//! The relay image without Docker: `ivsctl deploy` builds it from the static relay binary and
//! pushes it to a real registry (docker-registry on loopback, standing in for ECR's registry
//! endpoint; moto is the rest of AWS). The tests read it back by digest, then run it the way a
//! container runtime would: the layer unpacked as the whole root file system, the image's user,
//! an ingest reached over RTMPS by host name through a DNS server of the test's own.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::cli::{assert_ok, with_verb};
use common::ingest::{FfmpegIngest, STREAM_KEY, TlsProxy, listening};
use common::moto::Moto;
use common::probe::probe;
use common::registry::{DockerRegistry, digest};
use common::{Publisher, free_tcp_port, free_udp_port, static_relay};
use serde_json::{Value, json};
use tokio::process::Command;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const REPOSITORY: &str = "ivs-relay";
/// By path: the relay runs with an empty environment, so with no PATH to search.
const CHROOT: &str = "/usr/sbin/chroot";

/// `ivsctl deploy` against moto, pushing to the registry at `registry_url`.
async fn deploy(moto: &Moto, registry_url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ivsctl"))
        .args(["deploy", "--no-wait"])
        .args(extra)
        .envs(moto.env())
        .env("IVSCTL_REGISTRY_URL", registry_url)
        .env_remove("IVSCTL_IMAGE")
        .env_remove("IVSCTL_STACK")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("ivsctl runs")
}

/// The image the stack's task definition runs.
async fn task_image(moto: &Moto) -> String {
    let ecs = aws_sdk_ecs::Client::new(&moto.sdk_config().await);
    let task = ecs.describe_task_definition().task_definition("ivs-relay").send().await.expect("task definition");
    task.task_definition().and_then(|t| t.container_definitions().first()).and_then(|c| c.image()).expect("an image").to_owned()
}

/// A blob fetched by digest, checked against it.
async fn blob(registry: &DockerRegistry, descriptor: &Value) -> Vec<u8> {
    let wanted = descriptor["digest"].as_str().expect("digest");
    let bytes = registry.get(REPOSITORY, &format!("blobs/{wanted}"), "*/*").await;
    assert_eq!(digest(&bytes), wanted, "blob content matches its digest");
    assert_eq!(descriptor["size"].as_u64(), Some(bytes.len() as u64), "blob size as the manifest says");
    bytes
}

/// Manifest, config and the one layer of the image `reference` (`…@sha256:…`), each verified.
async fn pull(registry: &DockerRegistry, reference: &str) -> (Value, Value, Vec<u8>) {
    let (_, manifest_digest) = reference.split_once('@').unwrap_or_else(|| panic!("{reference} is pinned by digest"));
    let manifest_bytes = registry.get(REPOSITORY, &format!("manifests/{manifest_digest}"), OCI_MANIFEST).await;
    assert_eq!(digest(&manifest_bytes), manifest_digest, "manifest content matches the digest the task runs");
    let manifest: Value = serde_json::from_slice(&manifest_bytes).expect("manifest is JSON");
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    let config: Value = serde_json::from_slice(&blob(registry, &manifest["config"]).await).expect("config is JSON");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "a single layer: {manifest}");
    assert_eq!(layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let layer = blob(registry, &layers[0]).await;
    (manifest, config, layer)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("the layer is gzip");
    out
}

#[tokio::test]
async fn deploy_pushes_the_relay_image_once_and_pins_it_by_digest() {
    let binary = std::fs::read(static_relay()).expect("static relay");
    let dir = tempfile::tempdir().expect("tempdir");
    let (moto, registry) = (Moto::start().await, DockerRegistry::start(dir.path()).await);

    let plan = assert_ok(&deploy(&moto, &registry.url, &["--dry-run"]).await);
    assert!(with_verb(&plan, "create").iter().any(|r| r.starts_with("relay image")), "a dry run names the push:\n{plan}");
    assert_eq!(registry.uploads(), 0, "a dry run pushes nothing");

    let out = assert_ok(&deploy(&moto, &registry.url, &[]).await);
    assert!(with_verb(&out, "created").iter().any(|r| r.starts_with("relay image")), "the image is a deploy step:\n{out}");
    let reference = task_image(&moto).await;
    assert!(reference.starts_with("123456789012.dkr.ecr.us-east-1.amazonaws.com/ivs-relay@sha256:"), "{reference}");

    let (_, config, layer) = pull(&registry, &reference).await;
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Entrypoint"], json!(["/ivs-relay"]));
    assert_eq!(config["config"]["User"], "65532:65532", "not root");
    assert_eq!(config["config"]["ExposedPorts"], json!({ "8443/tcp": {}, "50000/udp": {} }));
    let tar = gunzip(&layer);
    assert_eq!(config["rootfs"]["diff_ids"], json!([digest(&tar)]), "diff_id is the uncompressed layer's digest");

    // The layer is the binary and nothing else.
    let mut archive = tar::Archive::new(&tar[..]);
    let mut files = Vec::new();
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        files.push((entry.path().expect("path").display().to_string(), entry.header().mode().expect("mode"), content));
    }
    assert_eq!(files.len(), 1, "one file: {:?}", files.iter().map(|f| &f.0).collect::<Vec<_>>());
    assert_eq!((files[0].0.as_str(), files[0].1), ("ivs-relay", 0o755));
    assert!(files[0].2 == binary, "the layer holds exactly the static relay binary");

    // `latest` names the same image, for people browsing the repository.
    let latest = registry.get(REPOSITORY, "manifests/latest", OCI_MANIFEST).await;
    assert_eq!(format!("{REPOSITORY}@{}", digest(&latest)), reference.rsplit('/').next().unwrap_or_default());
    assert_eq!(registry.uploads(), 2, "config and layer uploaded");

    // Again with the same binary: nothing pushed, nothing written, the same task definition.
    moto.start_recording().await;
    let again = assert_ok(&deploy(&moto, &registry.url, &[]).await);
    let writes: Vec<String> = moto.stop_recording().await.into_iter().filter(|c| c.writes()).map(|c| c.action).collect();
    assert!(with_verb(&again, "unchanged").iter().any(|r| r.starts_with("relay image")), "{again}");
    assert!(with_verb(&again, "created").is_empty() && with_verb(&again, "updated").is_empty(), "{again}");
    assert_eq!(registry.uploads(), 2, "a second push uploads no blob");
    assert!(writes.is_empty(), "a re-deploy of the same binary writes nothing to AWS: {writes:?}");
    assert_eq!(task_image(&moto).await, reference);
}

/// dnsmasq on loopback answering `name` with 127.0.0.1 and nothing else, logging each query.
struct Dnsmasq {
    _child: tokio::process::Child,
    addr: String,
    log: std::path::PathBuf,
}

impl Dnsmasq {
    async fn start(dir: &Path, name: &str) -> Dnsmasq {
        let port = free_udp_port();
        let log = dir.join("dnsmasq.log");
        let child = Command::new("dnsmasq")
            .args(["--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces"])
            .args(["--listen-address=127.0.0.1", "--log-queries", "--log-facility=-", "--pid-file=", "--user=root"])
            .arg(format!("--port={port}"))
            .arg(format!("--address=/{name}/127.0.0.1"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .kill_on_drop(true)
            .spawn()
            .expect("dnsmasq starts (apt install dnsmasq-base)");
        let started = common::wait_until(Duration::from_secs(10), || async {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("started, version"))
        })
        .await;
        assert!(started.is_some(), "dnsmasq did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        Dnsmasq { _child: child, addr: format!("127.0.0.1:{port}"), log }
    }

    fn queries(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test]
async fn the_image_runs_alone_as_its_user_and_publishes_to_an_rtmps_ingest_by_host_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (moto, registry) = (Moto::start().await, DockerRegistry::start(dir.path()).await);
    assert_ok(&deploy(&moto, &registry.url, &[]).await);
    let (_, _, layer) = pull(&registry, &task_image(&moto).await).await;

    // Unpack as a container runtime does: as root, keeping owners, modes and extended attributes
    // (there must be none: the relay needs no capability on its unprivileged port).
    let root = dir.path().join("rootfs");
    std::fs::create_dir(&root).expect("rootfs");
    let mut untar = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--same-owner", "-xzpf", "-", "-C"])
        .arg(&root)
        .stdin(Stdio::piped())
        .spawn()
        .expect("tar");
    std::io::Write::write_all(&mut untar.stdin.take().expect("stdin"), &layer).expect("feed tar");
    assert!(untar.wait().expect("tar").success(), "tar unpacks the layer");
    let names: Vec<String> =
        std::fs::read_dir(&root).expect("rootfs").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    assert_eq!(names, ["ivs-relay"], "the root file system holds the binary alone");

    let ingest = FfmpegIngest::start(free_tcp_port(), &dir.path().join("ingest.flv")).await;
    let proxy = TlsProxy::start(dir.path(), "ingest.test", free_tcp_port(), ingest.port).await;
    let dns = Dnsmasq::start(dir.path(), "ingest.test").await;
    // The test's ingest has a private CA; a real one (IVS) is covered by the bundled web PKI roots.
    std::fs::copy(&proxy.ca, root.join("ingest-ca.pem")).expect("CA into the root");

    let port = free_tcp_port();
    let listen = format!("127.0.0.1:{port}");
    let destination = format!("rtmps://ingest.test:{}/live/{STREAM_KEY}", proxy.port);
    let relay_log = dir.path().join("relay.log");
    let relay = Command::new(CHROOT)
        .arg("--userspec=65532:65532")
        .arg(&root)
        .arg("/ivs-relay")
        .args(["--http", "--listen", &listen, "--udp-port", &free_udp_port().to_string(), "--nameserver", &dns.addr])
        .args(["--destination", &destination, "--ingest-ca", "/ingest-ca.pem"])
        .env_clear()
        .env("RUST_LOG", "info,ivs_relay=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&relay_log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("chroot runs");
    let log = || std::fs::read_to_string(&relay_log).unwrap_or_default();
    let up = common::wait_until(Duration::from_secs(10), || async { listening(port) }).await;
    assert!(up.is_some(), "the relay did not listen on {listen}:\n{}", log());

    let pid = relay.id().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    assert!(status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("65532")), "runs as 65532:\n{status}");

    // The container health check runs the same binary in the same root.
    let health = std::process::Command::new(CHROOT)
        .args(["--userspec=65532:65532"])
        .arg(&root)
        .args(["/ivs-relay", "--health-check", "--listen", &listen])
        .env_clear()
        .output()
        .expect("health check runs");
    assert!(health.status.success(), "health check: {}", String::from_utf8_lossy(&health.stderr));

    let publisher = Publisher::start(&format!("http://{listen}/whip/cam1"), 4.0, &[]).await.unwrap_or_else(|e| panic!("{e}\n{}", log()));
    publisher.finish().await;
    probe(&ingest.finished().await).assert_good(1280, 720, 4.0);
    assert!(dns.queries().contains("ingest.test"), "the relay asked the test's DNS server:\n{}", dns.queries());
    assert!(!log().contains(STREAM_KEY), "the relay logged the stream key");
}

#[tokio::test]
async fn a_registry_that_fails_stops_the_deploy_with_one_line_before_the_task_definition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let read_only = DockerRegistry::start_read_only(dir.path()).await;
    let closed = format!("http://127.0.0.1:{}", free_tcp_port());
    for (registry_url, expected) in
        [(closed.as_str(), ["unreachable", "--registry-url"]), (read_only.url.as_str(), ["POST blob upload failed", "HTTP 405"])]
    {
        let moto = Moto::start().await;
        let output = deploy(&moto, registry_url, &[]).await;
        let error = common::cli::stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{error}");
        assert_eq!(error.trim().lines().count(), 1, "one line: {error}");
        assert!(error.contains("relay image sha256:") && expected.iter().all(|e| error.contains(e)), "{error}");
        let ecs = aws_sdk_ecs::Client::new(&moto.sdk_config().await);
        assert!(ecs.describe_task_definition().task_definition("ivs-relay").send().await.is_err(), "no task definition without its image");
    }
}
