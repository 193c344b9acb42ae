//! The relay's container image, made without Docker: one gzip'd tar layer holding nothing but
//! the static `ivs-relay` binary, plus an OCI image config and manifest. Every byte is
//! reproducible (no timestamps, fixed owners and modes), so the same binary always gives the same
//! manifest digest: `deploy` pushes nothing and the task definition stays as it is.

mod binary;
mod layer;
pub mod registry;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

pub use binary::{Artifact, BinaryError, read_static};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Where the binary sits in the image, and what the container runs.
pub const ENTRYPOINT: &str = "/ivs-relay";
/// The user the relay runs as: not root, with no capability (it listens on unprivileged ports).
pub const USER: &str = "65532:65532";

/// A content address, `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(format!("sha256:{:x}", Sha256::digest(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Content with its media type and digest, as a registry stores it.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: &'static str,
    pub digest: Digest,
    pub bytes: Bytes,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        Self { media_type, digest: Digest::of(&bytes), bytes: bytes.into() }
    }

    /// The descriptor a manifest refers to this blob by.
    fn descriptor(&self) -> serde_json::Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len() })
    }
}

/// A one-layer image, ready to push.
#[derive(Debug, Clone)]
pub struct Image {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
}

/// What the image declares about running it, in the OCI config's (Docker-derived) field names.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    user: &'static str,
    entrypoint: [&'static str; 1],
    exposed_ports: BTreeMap<String, serde_json::Value>,
}

impl Image {
    /// The image of `relay` (a static binary), declaring the HTTPS port and `udp_port`.
    pub fn new(relay: &[u8], udp_port: u16) -> Self {
        let tar = layer::tar(relay);
        let diff_id = Digest::of(&tar);
        let layer = Blob::new(LAYER_TYPE, layer::gzip(&tar));
        let run = RunConfig {
            user: USER,
            entrypoint: [ENTRYPOINT],
            exposed_ports: [format!("{}/tcp", crate::commands::deploy::RELAY_HTTPS_PORT), format!("{udp_port}/udp")]
                .into_iter()
                .map(|p| (p, json!({})))
                .collect(),
        };
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": run,
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created_by": "ivsctl deploy" }],
        });
        let config = Blob::new(CONFIG_TYPE, serde_json::to_vec(&config).expect("a JSON value serializes"));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        });
        let manifest = Blob::new(MANIFEST_TYPE, serde_json::to_vec(&manifest).expect("a JSON value serializes"));
        Self { layer, config, manifest }
    }

    /// The image of the static relay binary at `path`.
    pub fn of_file(path: &Path, udp_port: u16) -> Result<Self, BinaryError> {
        Ok(Self::new(&read_static(Artifact::Relay, path)?, udp_port))
    }

    /// The digest a task definition pins the image by.
    pub fn digest(&self) -> &Digest {
        &self.manifest.digest
    }

    /// The blobs a manifest needs in the registry before it can be put.
    pub fn blobs(&self) -> [&Blob; 2] {
        [&self.config, &self.layer]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_binary_makes_the_same_image() {
        let a = Image::new(b"\x7fELF pretend binary", 50000);
        let b = Image::new(b"\x7fELF pretend binary", 50000);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), Image::new(b"\x7fELF another binary", 50000).digest());
        assert_ne!(a.digest(), Image::new(b"\x7fELF pretend binary", 50001).digest(), "the UDP port is declared");
    }

    #[test]
    fn the_manifest_names_config_and_layer_by_digest_and_size() {
        let image = Image::new(b"binary", 50000);
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest.bytes).expect("JSON");
        assert_eq!(manifest["config"]["digest"], image.config.digest.as_str());
        assert_eq!(manifest["layers"][0]["digest"], image.layer.digest.as_str());
        assert_eq!(manifest["layers"][0]["size"], image.layer.bytes.len());
        let config: serde_json::Value = serde_json::from_slice(&image.config.bytes).expect("JSON");
        assert_eq!(config["config"]["Entrypoint"], json!(["/ivs-relay"]));
        assert_eq!(config["config"]["User"], USER);
        assert_eq!(config["config"]["ExposedPorts"], json!({ "8443/tcp": {}, "50000/udp": {} }));
    }
}
