//! The stack's Amazon IVS channel: created by ivsctl (`--ivs`, tagged, deleted by teardown) or
//! adopted (`--ivs-channel ARN`, never changed or deleted). Its ingest endpoint and stream key
//! become the relay's default destination (an SSM SecureString, see `parameter`).

use aws_sdk_ivs::types::{ChannelLatencyMode, ChannelType};

use super::{Change, Found, Mode, Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

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

async fn read(aws: &Aws, names: &Names, arn: &str) -> Result<Option<(Channel, String, String)>, AwsError> {
    let Some(found) = aws.ivs.get_channel().arn(arn).send().await.or_missing(NOT_FOUND, &label(arn), "ivs:GetChannel")? else {
        return Ok(None);
    };
    let Some(c) = found.channel() else { return Ok(None) };
    let ours = c.tags().and_then(|t| t.get(TAG_KEY)).is_some_and(|v| v == names.tag_value());
    let channel = Channel {
        arn: c.arn().unwrap_or(arn).to_owned(),
        ingest_endpoint: c.ingest_endpoint().unwrap_or_default().to_owned(),
        playback_url: c.playback_url().unwrap_or_default().to_owned(),
        ours,
        stream_key: None,
    };
    let kind = c.r#type().map(|t| t.as_str().to_owned()).unwrap_or_default();
    let latency = c.latency_mode().map(|l| l.as_str().to_owned()).unwrap_or_default();
    Ok(Some((channel, kind, latency)))
}

/// The channel's stream key, read back (for an adopted channel, or a lost destination).
pub async fn stream_key(aws: &Aws, channel: &Channel) -> Result<String, AwsError> {
    let resource = label(&channel.arn);
    let keys = aws.ivs.list_stream_keys().channel_arn(&channel.arn).send().await.on(&resource, "ivs:ListStreamKeys")?;
    let Some(key_arn) = keys.stream_keys().first().and_then(|k| k.arn()) else {
        return Err(AwsError::new(
            resource,
            "ivs:ListStreamKeys",
            "NoStreamKey",
            "the channel has no stream key: create one (`aws ivs create-stream-key`)",
        ));
    };
    let key = aws.ivs.get_stream_key().arn(key_arn).send().await.on(&resource, "ivs:GetStreamKey")?;
    Ok(key.stream_key().and_then(|k| k.value()).unwrap_or_default().to_owned())
}

/// Finds the channel at `arn` (adopted or recorded by an earlier deploy) or creates one.
/// Returns `None` only in a dry run that would create it.
pub async fn ensure(
    aws: &Aws,
    names: &Names,
    arn: Option<&str>,
    spec: &ChannelSpec,
    mode: Mode,
) -> Result<(Change, Option<Channel>), AwsError> {
    if let Some(arn) = arn
        && let Some((channel, kind, latency)) = read(aws, names, arn).await?
    {
        if !channel.ours {
            return Ok((Change::Unchanged, Some(channel)));
        }
        let mut differences = Vec::new();
        if kind != spec.channel_type {
            differences.push(format!("type {kind} → {}", spec.channel_type));
        }
        if latency != spec.latency_mode {
            differences.push(format!("latency mode {latency} → {}", spec.latency_mode));
        }
        if !differences.is_empty() && mode == Mode::Apply {
            aws.ivs
                .update_channel()
                .arn(&channel.arn)
                .r#type(ChannelType::from(spec.channel_type.as_str()))
                .latency_mode(ChannelLatencyMode::from(spec.latency_mode.as_str()))
                .send()
                .await
                .on(&label(&channel.arn), "ivs:UpdateChannel")?;
        }
        return Ok((Change::from_differences(differences), Some(channel)));
    }
    if mode == Mode::DryRun {
        return Ok((Change::Created, None));
    }
    let resource = format!("IVS channel {}", names.stack);
    let created = aws
        .ivs
        .create_channel()
        .name(names.stack.to_string())
        .r#type(ChannelType::from(spec.channel_type.as_str()))
        .latency_mode(ChannelLatencyMode::from(spec.latency_mode.as_str()))
        .tags(TAG_KEY, names.tag_value())
        .send()
        .await
        .on(&resource, "ivs:CreateChannel")?;
    let c = created.channel().ok_or_else(|| AwsError::new(&resource, "ivs:CreateChannel", "EmptyResponse", "no channel in the answer"))?;
    Ok((
        Change::Created,
        Some(Channel {
            arn: c.arn().unwrap_or_default().to_owned(),
            ingest_endpoint: c.ingest_endpoint().unwrap_or_default().to_owned(),
            playback_url: c.playback_url().unwrap_or_default().to_owned(),
            ours: true,
            stream_key: created.stream_key().and_then(|k| k.value()).map(str::to_owned),
        }),
    ))
}

/// Deletes the channel only if ivsctl created it for this stack.
pub async fn remove(aws: &Aws, names: &Names, arn: Option<&str>, mode: Mode) -> Result<Change, AwsError> {
    let Some(arn) = arn else { return Ok(Change::Absent) };
    Found::of(read(aws, names, arn).await?, |(channel, ..)| channel.ours)
        .remove(mode, async |_| {
            aws.ivs.delete_channel().arn(arn).send().await.or_missing(NOT_FOUND, &label(arn), "ivs:DeleteChannel")?;
            Ok(())
        })
        .await
}

/// The channel and its playback URL, for `status`.
pub async fn observe(aws: &Aws, names: &Names, arn: &str) -> Result<(Observed, Option<String>), AwsError> {
    Ok(match read(aws, names, arn).await? {
        None => (Observed::Missing, None),
        Some((channel, kind, latency)) => {
            let owner = if channel.ours { "created by ivsctl" } else { "adopted" };
            (Observed::present(Some(channel.arn), format!("{kind}, latency {latency}, {owner}")), Some(channel.playback_url))
        }
    })
}
