//! Pushing an image over the OCI distribution API (what ECR and every registry speak): blobs
//! first, each only when the registry lacks it, then the manifest.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use super::{Blob, Digest, Image, MANIFEST_TYPE};

#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {code}: {message}")]
pub struct RegistryError {
    /// e.g. `PUT manifest`.
    pub operation: &'static str,
    /// The registry's error code (`UNAUTHORIZED`, `DENIED`, …), `HTTP <status>` without one, or
    /// `unreachable`.
    pub code: String,
    pub message: String,
}

/// One repository of a registry, with the credentials to write to it.
pub struct Registry {
    http: reqwest::Client,
    /// `https://host[:port]`, no trailing slash.
    endpoint: String,
    repository: String,
    /// The whole `Authorization` header value (ECR: `Basic <token>`).
    authorization: Option<String>,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub blobs_uploaded: usize,
    pub bytes_uploaded: usize,
}

impl Registry {
    pub fn new(endpoint: &str, repository: &str, authorization: Option<String>) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| RegistryError { operation: "HTTP client setup", code: "client".into(), message: e.to_string() })?;
        Ok(Self { http, endpoint: endpoint.trim_end_matches('/').to_owned(), repository: repository.to_owned(), authorization })
    }

    /// Whether the registry has the manifest `digest` in this repository.
    pub async fn has_manifest(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let request = self.request(Method::HEAD, &self.url(&format!("manifests/{digest}"))).header(ACCEPT, MANIFEST_TYPE);
        self.exists(request, "HEAD manifest").await
    }

    pub async fn has_blob(&self, digest: &Digest) -> Result<bool, RegistryError> {
        self.exists(self.request(Method::HEAD, &self.url(&format!("blobs/{digest}"))), "HEAD blob").await
    }

    /// Uploads what the registry lacks, then puts the manifest under `tag`. An image already
    /// there by digest uploads nothing at all.
    pub async fn push(&self, image: &Image, tag: &str) -> Result<Pushed, RegistryError> {
        let mut pushed = Pushed { blobs_uploaded: 0, bytes_uploaded: 0 };
        if self.has_manifest(image.digest()).await? {
            return Ok(pushed);
        }
        for blob in image.blobs() {
            if !self.has_blob(&blob.digest).await? {
                self.upload(blob).await?;
                pushed.blobs_uploaded += 1;
                pushed.bytes_uploaded += blob.bytes.len();
            }
        }
        let request = self
            .request(Method::PUT, &self.url(&format!("manifests/{tag}")))
            .header(CONTENT_TYPE, MANIFEST_TYPE)
            .body(image.manifest.bytes.clone());
        self.send(request, "PUT manifest").await?;
        Ok(pushed)
    }

    /// A blob in one piece: open an upload session, send the bytes, close it naming the digest
    /// (the registry checks it).
    async fn upload(&self, blob: &Blob) -> Result<(), RegistryError> {
        let started = self.send(self.request(Method::POST, &self.url("blobs/uploads/")), "POST blob upload").await?;
        let location = self.location(&started, "POST blob upload")?;
        let request = self.request(Method::PATCH, &location).header(CONTENT_TYPE, "application/octet-stream").body(blob.bytes.clone());
        let sent = self.send(request, "PATCH blob").await?;
        let location = self.location(&sent, "PATCH blob")?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let close = format!("{location}{separator}digest={}", blob.digest);
        self.send(self.request(Method::PUT, &close).header(CONTENT_TYPE, "application/octet-stream"), "PUT blob").await?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.endpoint, self.repository)
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value),
            None => request,
        }
    }

    /// The upload URL a registry answers with, which may be relative to the endpoint.
    fn location(&self, response: &Response, operation: &'static str) -> Result<String, RegistryError> {
        let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| RegistryError {
            operation,
            code: "protocol".into(),
            message: "the registry sent no Location for the upload".into(),
        })?;
        Ok(if location.starts_with('/') { format!("{}{location}", self.endpoint) } else { location.to_owned() })
    }

    async fn exists(&self, request: RequestBuilder, operation: &'static str) -> Result<bool, RegistryError> {
        let response = request.send().await.map_err(|e| unreachable(operation, &e))?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(failure(operation, response).await),
        }
    }

    async fn send(&self, request: RequestBuilder, operation: &'static str) -> Result<Response, RegistryError> {
        let response = request.send().await.map_err(|e| unreachable(operation, &e))?;
        if response.status().is_success() { Ok(response) } else { Err(failure(operation, response).await) }
    }
}

fn unreachable(operation: &'static str, e: &reqwest::Error) -> RegistryError {
    // reqwest's message names the URL, which holds nothing secret (credentials go in a header).
    let mut message = e.to_string();
    if let Some(cause) = std::error::Error::source(e) {
        message = format!("{message}: {cause}");
    }
    RegistryError { operation, code: "unreachable".into(), message }
}

/// The registry's own error (`{"errors":[{"code","message"}]}`), or the HTTP status.
async fn failure(operation: &'static str, response: Response) -> RegistryError {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Error>,
    }
    #[derive(serde::Deserialize)]
    struct Error {
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    match serde_json::from_str::<Errors>(&body).ok().and_then(|e| e.errors.into_iter().next()) {
        Some(e) => RegistryError { operation, code: e.code, message: e.message },
        None => {
            RegistryError { operation, code: format!("HTTP {}", status.as_u16()), message: status.canonical_reason().unwrap_or("").into() }
        }
    }
}
