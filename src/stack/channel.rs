//! The stack's Amazon IVS channel: created by ivsctl (`--ivs`, tagged, deleted by teardown) or
//! adopted (`--ivs-channel ARN`, never changed or deleted). Its ingest endpoint and stream key
//! become the relay's default destination (an SSM SecureString, see `parameter`).

use aws_sdk_ivs::types::{ChannelLatencyMode, ChannelType};

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY};
use aws_sdk_ivs::error::ProvideErrorMetadata;

use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;

const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

/// The channel as the stack wants it.
pub struct ChannelSpec {
    /// `STANDARD`, `BASIC`, `ADVANCED_SD` or `ADVANCED_HD`.
    pub channel_type: String,
    /// `LOW` or `NORMAL`.
    pub latency_mode: String,
}

/// A live channel, and its stream key when this run created it or had to read it.
#[derive(Debug, Clone)]
pub struct Channel {
    pub arn: String,
    pub ingest_endpoint: String,
    pub playback_url: String,
    pub ours: bool,
    pub stream_key: Option<String>,
}

impl Channel {
    /// The relay's destination for this channel (holds the stream key: a secret).
    pub fn destination(&self) -> Option<String> {
        self.stream_key.as_ref().map(|key| format!("rtmps://{}:443/app/{key}", self.ingest_endpoint))
    }
}

fn label(arn: &str) -> String {
    format!("IVS channel {arn}")
}

/// The stack's channel: the one its SSM parameter records (or `--ivs-channel` names), or a new one.
pub struct IvsChannel<'a> {
    pub names: &'a Names,
    pub arn: Option<&'a str>,
}

/// A live channel, with its type and latency mode.
pub struct Live {
    pub channel: Channel,
    kind: String,
    latency: String,
}

/// How long teardown keeps trying to delete a channel someone is streaming to.
const LIVE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// What teardown does when IVS refuses to delete a channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A stream is live on it (409 ConflictException): end the stream, then try again.
    StopStreamAndRetry,
    /// It went meanwhile.
    Gone,
    Fail,
}

pub fn on_delete_error(code: Option<&str>) -> Refusal {
    match code {
        Some("ConflictException") => Refusal::StopStreamAndRetry,
        Some(code) if NOT_FOUND.contains(&code) => Refusal::Gone,
        _ => Refusal::Fail,
    }
}

/// The channel's stream key, read back (for an adopted channel, or a lost destination).
pub async fn stream_key(aws: &Aws, channel: &Channel) -> Result<String, AwsError> {
    let resource = label(&channel.arn);
    let keys = aws.ivs.list_stream_keys().channel_arn(&channel.arn).send().await.on(&resource, op!("ivs:ListStreamKeys"))?;
    let Some(key_arn) = keys.stream_keys().first().and_then(|k| k.arn()) else {
        return Err(AwsError::new(
            resource,
            op!("ivs:ListStreamKeys"),
            "NoStreamKey",
            "the channel has no stream key: create one (`aws ivs create-stream-key`)",
        ));
    };
    let key = aws.ivs.get_stream_key().arn(key_arn).send().await.on(&resource, op!("ivs:GetStreamKey"))?;
    Ok(key.stream_key().and_then(|k| k.value()).unwrap_or_default().to_owned())
}

impl Resource for IvsChannel<'_> {
    type Live = Live;
    type Desired = ChannelSpec;
    /// The channel; `None` only in a dry run that would create it.
    type Output = Option<Channel>;

    fn label(&self) -> String {
        label(self.arn.unwrap_or(&self.names.stack.to_string()))
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let Some(arn) = self.arn else { return Ok(None) };
        let Some(found) = aws.ivs.get_channel().arn(arn).send().await.or_missing(NOT_FOUND, &label(arn), op!("ivs:GetChannel"))? else {
            return Ok(None);
        };
        let Some(c) = found.channel() else { return Ok(None) };
        let ours = c.tags().and_then(|t| t.get(TAG_KEY)).is_some_and(|v| v == self.names.tag_value());
        Ok(Some(Live {
            channel: Channel {
                arn: c.arn().unwrap_or(arn).to_owned(),
                ingest_endpoint: c.ingest_endpoint().unwrap_or_default().to_owned(),
                playback_url: c.playback_url().unwrap_or_default().to_owned(),
                ours,
                stream_key: None,
            },
            kind: c.r#type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
            latency: c.latency_mode().map(|l| l.as_str().to_owned()).unwrap_or_default(),
        }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.channel.ours
    }

    fn diff(&self, spec: &ChannelSpec, live: &Live) -> Action {
        let mut differences = Vec::new();
        if live.kind != spec.channel_type {
            differences.push(format!("type {} → {}", live.kind, spec.channel_type));
        }
        if live.latency != spec.latency_mode {
            differences.push(format!("latency mode {} → {}", live.latency, spec.latency_mode));
        }
        Action::update_if(differences)
    }

    fn output(&self, _: &Aws, _: &ChannelSpec, live: Option<&Live>) -> Option<Channel> {
        live.map(|l| l.channel.clone())
    }

    async fn create(&self, aws: &Aws, spec: &ChannelSpec) -> Result<Option<Channel>, AwsError> {
        let resource = self.label();
        let created = aws
            .ivs
            .create_channel()
            .name(self.names.stack.to_string())
            .r#type(ChannelType::from(spec.channel_type.as_str()))
            .latency_mode(ChannelLatencyMode::from(spec.latency_mode.as_str()))
            .tags(TAG_KEY, self.names.tag_value())
            .send()
            .await
            .on(&resource, op!("ivs:CreateChannel"))?;
        let c = created
            .channel()
            .ok_or_else(|| AwsError::new(&resource, op!("ivs:CreateChannel"), "EmptyResponse", "no channel in the answer"))?;
        Ok(Some(Channel {
            arn: c.arn().unwrap_or_default().to_owned(),
            ingest_endpoint: c.ingest_endpoint().unwrap_or_default().to_owned(),
            playback_url: c.playback_url().unwrap_or_default().to_owned(),
            ours: true,
            stream_key: created.stream_key().and_then(|k| k.value()).map(str::to_owned),
        }))
    }

    async fn update(&self, aws: &Aws, spec: &ChannelSpec, live: &Live) -> Result<Option<Channel>, AwsError> {
        aws.ivs
            .update_channel()
            .arn(&live.channel.arn)
            .r#type(ChannelType::from(spec.channel_type.as_str()))
            .latency_mode(ChannelLatencyMode::from(spec.latency_mode.as_str()))
            .send()
            .await
            .on(&self.label(), op!("ivs:UpdateChannel"))?;
        Ok(Some(live.channel.clone()))
    }

    /// A channel someone streams to (OBS on the key, a relay still publishing) refuses deletion:
    /// the stream is stopped and the deletion retried, for a bounded time.
    async fn delete(&self, aws: &Aws, live: Live) -> Result<(), AwsError> {
        let (arn, resource) = (&live.channel.arn, self.label());
        let deadline = tokio::time::Instant::now() + LIVE_PATIENCE;
        loop {
            let error = match aws.ivs.delete_channel().arn(arn).send().await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            match on_delete_error(error.code()) {
                Refusal::Gone => return Ok(()),
                Refusal::StopStreamAndRetry if tokio::time::Instant::now() < deadline => {
                    tracing::info!(channel = %arn, "the channel is live: stopping its stream before deleting it");
                    aws.ivs.stop_stream().channel_arn(arn).send().await.or_missing(
                        &["ChannelNotBroadcasting"],
                        &resource,
                        op!("ivs:StopStream"),
                    )?;
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
                _ => return Err(crate::error::describe(&error, &resource, op!("ivs:DeleteChannel"))),
            }
        }
    }

    fn describe(&self, live: &Live) -> Observed {
        let owner = if live.channel.ours { "created by ivsctl" } else { "adopted" };
        Observed::present(Some(live.channel.arn.clone()), format!("{}, latency {}, {owner}", live.kind, live.latency))
    }
}

/// The stack's channel: the one its parameter records, else one ivsctl made for it (named and
/// tagged after the stack) whose record is gone, e.g. by a teardown cut short.
pub async fn find(aws: &Aws, names: &Names) -> Result<Option<String>, AwsError> {
    if let Some(arn) = super::parameter::value(aws, names, super::parameter::Kind::Channel).await? {
        return Ok(Some(arn));
    }
    let resource = label(&names.stack.to_string());
    let listed = aws.ivs.list_channels().filter_by_name(names.stack.to_string()).send().await.on(&resource, op!("ivs:ListChannels"))?;
    let ours = listed.channels().iter().find(|c| c.tags().and_then(|t| t.get(TAG_KEY)).is_some_and(|v| v == names.tag_value()));
    Ok(ours.and_then(|c| c.arn()).map(str::to_owned))
}

/// The channel's playback URL, for `status`.
pub async fn playback_url(aws: &Aws, names: &Names, arn: &str) -> Result<Option<String>, AwsError> {
    Ok(IvsChannel { names, arn: Some(arn) }.read(aws).await?.map(|live| live.channel.playback_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_channel_has_its_stream_stopped_before_deletion_is_tried_again() {
        assert_eq!(on_delete_error(Some("ConflictException")), Refusal::StopStreamAndRetry);
        assert_eq!(on_delete_error(Some("ResourceNotFoundException")), Refusal::Gone);
        assert_eq!(on_delete_error(Some("AccessDeniedException")), Refusal::Fail);
        assert_eq!(on_delete_error(None), Refusal::Fail);
    }

    #[test]
    fn type_and_latency_update_in_place() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let channel = IvsChannel { names: &names, arn: Some("arn:c") };
        let live = Live {
            channel: Channel {
                arn: "arn:c".into(),
                ingest_endpoint: String::new(),
                playback_url: String::new(),
                ours: true,
                stream_key: None,
            },
            kind: "STANDARD".into(),
            latency: "LOW".into(),
        };
        let spec = |kind: &str, latency: &str| ChannelSpec { channel_type: kind.into(), latency_mode: latency.into() };
        assert_eq!(channel.diff(&spec("STANDARD", "LOW"), &live), Action::NoOp);
        assert_eq!(channel.diff(&spec("BASIC", "LOW"), &live), Action::Update(vec!["type STANDARD → BASIC".into()]));
    }
}
