//! Waiting for AWS to settle: retrying calls that fail only until something propagates or
//! drains, and polling with a deadline.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

/// How long IAM changes take to be visible to other services.
pub const PROPAGATION: Duration = Duration::from_secs(90);
/// How long stopping tasks may hold network interfaces, services and clusters.
pub const DRAIN: Duration = Duration::from_secs(600);

/// Calls `attempt` again while it fails with one of `codes`, backing off from 1 s to 10 s, for at
/// most `patience`; returns the last result for the caller to judge.
pub async fn retrying<T, E, R, F, Fut>(codes: &[&str], patience: Duration, attempt: F) -> Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
{
    retrying_while(|e| crate::error::has_code(e, codes), patience, attempt).await
}

/// [`retrying`], for failures `settling` recognises.
pub async fn retrying_while<T, E, R, F, Fut>(
    settling: impl Fn(&SdkError<E, R>) -> bool,
    patience: Duration,
    mut attempt: F,
) -> Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_secs(1);
    loop {
        match attempt().await {
            Err(e) if settling(&e) && tokio::time::Instant::now() + pause < deadline => {
                tracing::debug!(code = e.code(), "waiting for AWS to settle");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            result => return result,
        }
    }
}
