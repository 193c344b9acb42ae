//! The relay image in the stack's ECR repository: pushed over the registry API with the
//! credentials ECR hands out, and pinned by digest, so a task runs exactly the binary deployed.

use super::repository::Repository;
use super::{Change, Mode};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::image::Image;
use crate::image::registry::{Registry, RegistryError};
use crate::op;

/// The tag the newest push also gets, for people browsing the repository.
const TAG: &str = "latest";

pub fn label(image: &Image) -> String {
    let digest = image.digest().as_str();
    format!("relay image {}", &digest[..digest.len().min("sha256:".len() + 12)])
}

/// Pushes `image` unless the repository has it; returns the reference to run it by.
/// `registry_url` replaces the registry endpoint ECR names (for emulators).
pub async fn ensure(
    aws: &Aws,
    repository: &Repository,
    image: &Image,
    registry_url: Option<&str>,
    mode: Mode,
) -> Result<(Change, String), AwsError> {
    let resource = label(image);
    let reference = format!("{}@{}", repository.uri, image.digest());
    let registry = connect(aws, repository, registry_url, &resource).await?;
    let registry_error = |e: RegistryError| AwsError::new(&resource, e.operation, e.code, e.message);
    if registry.has_manifest(image.digest()).await.map_err(registry_error)? {
        return Ok((Change::NoOp, reference));
    }
    if mode == Mode::Apply {
        let pushed = registry.push(image, TAG).await.map_err(registry_error)?;
        tracing::info!(blobs = pushed.blobs_uploaded, bytes = pushed.bytes_uploaded, %reference, "pushed the relay image");
    }
    Ok((Change::Create, reference))
}

/// The repository's registry, logged in with a token from `ecr:GetAuthorizationToken`.
async fn connect(aws: &Aws, repository: &Repository, registry_url: Option<&str>, resource: &str) -> Result<Registry, AwsError> {
    const OPERATION: &str = op!("ecr:GetAuthorizationToken");
    let token = aws.ecr.get_authorization_token().send().await.on(resource, OPERATION)?;
    let data = token
        .authorization_data()
        .first()
        .ok_or_else(|| AwsError::new(resource, OPERATION, "NoAuthorizationData", "ECR returned no registry credentials"))?;
    let endpoint = match (registry_url, data.proxy_endpoint()) {
        (Some(url), _) => url.to_owned(),
        (None, Some(endpoint)) => endpoint.to_owned(),
        (None, None) => format!("https://{}", repository.uri.split('/').next().unwrap_or_default()),
    };
    let authorization = data.authorization_token().map(|t| format!("Basic {t}"));
    let name = repository.uri.split_once('/').map_or(repository.uri.as_str(), |(_, name)| name);
    Registry::new(&endpoint, name, authorization).map_err(|e| AwsError::new(resource, e.operation, e.code, e.message))
}
