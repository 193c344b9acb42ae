//! SSM Parameter Store: the stack's secrets (the WHIP token, the IVS destination with its stream
//! key) as SecureString, which reach the relay task as ECS `secrets` and nowhere else, and the
//! stack's IVS channel ARN as a plain String. Values never appear in output or errors.

use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging, Tag};

use super::{Change, Found, Mode, Names, Observed, TAG_KEY, not_ours};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

const NOT_FOUND: &[&str] = &["ParameterNotFound"];

/// One parameter of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The relay's WHIP bearer token (SecureString).
    Token,
    /// The relay's default destination, `rtmps://<ingest>:443/app/<stream key>` (SecureString).
    Destination,
    /// The ARN of the stack's IVS channel (String): whether the stack uses IVS, and which channel.
    Channel,
}

impl Kind {
    pub fn name(self, names: &Names) -> String {
        let leaf = match self {
            Self::Token => "token",
            Self::Destination => "destination",
            Self::Channel => "ivs-channel",
        };
        format!("/ivsctl/{}/{leaf}", names.stack)
    }

    fn secret(self) -> bool {
        !matches!(self, Self::Channel)
    }

    pub fn arn(self, aws: &Aws, names: &Names) -> String {
        aws.arn("ssm", &format!("parameter{}", self.name(names)))
    }
}

fn label(kind: Kind, names: &Names) -> String {
    format!("SSM parameter {}", kind.name(names))
}

/// A parameter's value and whether it is this stack's.
struct Live {
    value: String,
    tagged: bool,
}

async fn read(aws: &Aws, names: &Names, kind: Kind) -> Result<Option<Live>, AwsError> {
    let resource = label(kind, names);
    let name = kind.name(names);
    let Some(found) =
        aws.ssm.get_parameter().name(&name).with_decryption(true).send().await.or_missing(NOT_FOUND, &resource, "ssm:GetParameter")?
    else {
        return Ok(None);
    };
    let tags = aws
        .ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(&name)
        .send()
        .await
        .on(&resource, "ssm:ListTagsForResource")?;
    Ok(Some(Live {
        value: found.parameter().and_then(|p| p.value()).unwrap_or_default().to_owned(),
        tagged: super::tagged(tags.tag_list().iter().map(|t| (t.key(), t.value())), names),
    }))
}

/// The parameter's value, if it exists and is this stack's.
pub async fn value(aws: &Aws, names: &Names, kind: Kind) -> Result<Option<String>, AwsError> {
    Ok(read(aws, names, kind).await?.filter(|live| live.tagged).map(|live| live.value))
}

/// What the stack wants a parameter to hold.
pub enum Wanted<'a> {
    /// Exactly this value.
    Value(&'a str),
    /// Whatever it holds; `make` gives the first value (e.g. a fresh random token).
    Keep { make: &'a dyn Fn() -> String },
    /// A new value even if one exists (token rotation).
    Replace(&'a str),
}

pub async fn ensure(aws: &Aws, names: &Names, kind: Kind, wanted: Wanted<'_>, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(kind, names);
    let live = read(aws, names, kind).await?;
    if live.as_ref().is_some_and(|l| !l.tagged) {
        return Err(not_ours(&resource, &names.stack));
    }
    let (change, value) = match (&live, wanted) {
        (None, Wanted::Value(v) | Wanted::Replace(v)) => (Change::Created, v.to_owned()),
        (None, Wanted::Keep { make }) => (Change::Created, make()),
        (Some(_), Wanted::Keep { .. }) => return Ok(Change::Unchanged),
        (Some(l), Wanted::Value(v)) if l.value == v => return Ok(Change::Unchanged),
        (Some(_), Wanted::Value(v)) => (Change::Updated(vec!["value".to_owned()]), v.to_owned()),
        (Some(_), Wanted::Replace(v)) => (Change::Updated(vec!["value replaced (rotated)".to_owned()]), v.to_owned()),
    };
    if mode == Mode::Apply {
        let kind_of_value = if kind.secret() { ParameterType::SecureString } else { ParameterType::String };
        let request = aws.ssm.put_parameter().name(kind.name(names)).value(value).r#type(kind_of_value);
        let request = if live.is_some() {
            request.overwrite(true)
        } else {
            let tag = Tag::builder()
                .key(TAG_KEY)
                .value(names.tag_value())
                .build()
                .map_err(|e| AwsError::new(&resource, "ssm:PutParameter", "InvalidRequest", e.to_string()))?;
            request.description(format!("ivsctl stack {}", names.stack)).tags(tag)
        };
        request.send().await.on(&resource, "ssm:PutParameter")?;
    }
    Ok(change)
}

pub async fn remove(aws: &Aws, names: &Names, kind: Kind, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(kind, names);
    Found::of(read(aws, names, kind).await?, |live| live.tagged)
        .remove(mode, async |_| {
            aws.ssm.delete_parameter().name(kind.name(names)).send().await.or_missing(NOT_FOUND, &resource, "ssm:DeleteParameter")?;
            Ok(())
        })
        .await
}

/// For `status`: present or not, never the value of a secret.
pub async fn observe(aws: &Aws, names: &Names, kind: Kind) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names, kind).await?, |live| live.tagged).observe(|live| {
        if kind.secret() { Observed::present(None, "SecureString") } else { Observed::present(Some(live.value), "String") }
    }))
}

/// A fresh WHIP bearer token: 32 random bytes, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS's generator does not fail on Linux after boot; if it ever did, refusing beats a weak token.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
