//! SSM Parameter Store: the stack's secrets (the WHIP token, the IVS destination with its stream
//! key) as SecureString, which reach the relay task as ECS `secrets` and nowhere else, and the
//! stack's IVS channel ARN as a plain String. Values never appear in output or errors.

use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging, Tag};

use super::resource::{Action, Resource};
use super::{Names, Observed, TAG_KEY};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};
use crate::op;

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
    /// The relays' TLS certificate (String, PEM): what the front door pins.
    RelayCert,
    /// The relays' TLS private key (SecureString, PEM).
    RelayKey,
    /// One of the relay's destinations besides the IVS channel (`deploy --extra-destination`),
    /// numbered from 1 (SecureString: the URL holds a stream key).
    ExtraDestination(u8),
}

/// Destinations a deployed relay publishes to at most: the relay's `--max-destinations`
/// default, the IVS channel's included.
pub const MAX_DESTINATIONS: usize = 5;

impl Kind {
    pub fn name(self, names: &Names) -> String {
        let leaf = match self {
            Self::Token => "token",
            Self::Destination => "destination",
            Self::Channel => "ivs-channel",
            Self::RelayCert => "relay-cert",
            Self::RelayKey => "relay-key",
            Self::ExtraDestination(n) => return format!("/ivsctl/{}/extra-destination-{n}", names.stack),
        };
        format!("/ivsctl/{}/{leaf}", names.stack)
    }

    fn secret(self) -> bool {
        !matches!(self, Self::Channel | Self::RelayCert)
    }

    pub fn arn(self, aws: &Aws, names: &Names) -> String {
        aws.arn("ssm", &format!("parameter{}", self.name(names)))
    }
}

/// One of the stack's parameters.
pub struct Parameter<'a> {
    pub names: &'a Names,
    pub kind: Kind,
}

/// A parameter's value and whether it is this stack's.
pub struct Live {
    value: String,
    tagged: bool,
}

/// What the stack wants a parameter to hold.
pub enum Wanted {
    /// Exactly this value.
    Value(String),
    /// Whatever it holds; this value if it has none yet (e.g. a fresh random token). `None`: it
    /// is known to exist, so no first value is needed.
    Keep(Option<String>),
    /// A new value even if one exists (token rotation).
    Replace(String),
    /// A value only an earlier step's write makes known (a new channel's stream key): a dry run
    /// plans with it, a deploy never gets it.
    Unknown,
}

impl Parameter<'_> {
    async fn put(&self, aws: &Aws, desired: &Wanted, create: bool) -> Result<(), AwsError> {
        let resource = self.label();
        let (Wanted::Value(value) | Wanted::Keep(Some(value)) | Wanted::Replace(value)) = desired else {
            return Err(AwsError::new(resource, op!("ssm:PutParameter"), "Internal", "the value was not known when it was to be written"));
        };
        let kind_of_value = if self.kind.secret() { ParameterType::SecureString } else { ParameterType::String };
        let request = aws.ssm.put_parameter().name(self.kind.name(self.names)).value(value).r#type(kind_of_value);
        let request = if create {
            let tag = Tag::builder()
                .key(TAG_KEY)
                .value(self.names.tag_value())
                .build()
                .map_err(|e| AwsError::new(&resource, op!("ssm:PutParameter"), "InvalidRequest", e.to_string()))?;
            request.description(format!("ivsctl stack {}", self.names.stack)).tags(tag)
        } else {
            request.overwrite(true)
        };
        request.send().await.on(&resource, op!("ssm:PutParameter"))?;
        Ok(())
    }
}

impl Resource for Parameter<'_> {
    type Live = Live;
    type Desired = Wanted;
    type Output = ();

    fn label(&self) -> String {
        format!("SSM parameter {}", self.kind.name(self.names))
    }

    async fn read(&self, aws: &Aws) -> Result<Option<Live>, AwsError> {
        let resource = self.label();
        let name = self.kind.name(self.names);
        let Some(found) = aws.ssm.get_parameter().name(&name).with_decryption(true).send().await.or_missing(
            NOT_FOUND,
            &resource,
            op!("ssm:GetParameter"),
        )?
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
            .on(&resource, op!("ssm:ListTagsForResource"))?;
        Ok(Some(Live {
            value: found.parameter().and_then(|p| p.value()).unwrap_or_default().to_owned(),
            tagged: super::tagged(tags.tag_list().iter().map(|t| (t.key(), t.value())), self.names),
        }))
    }

    fn is_ours(&self, live: &Live) -> bool {
        live.tagged
    }

    fn diff(&self, desired: &Wanted, live: &Live) -> Action {
        match desired {
            Wanted::Keep(_) => Action::NoOp,
            Wanted::Value(value) if *value == live.value => Action::NoOp,
            Wanted::Value(_) | Wanted::Unknown => Action::Update(vec!["value".to_owned()]),
            Wanted::Replace(_) => Action::Update(vec!["value replaced (rotated)".to_owned()]),
        }
    }

    fn output(&self, _: &Aws, _: &Wanted, _: Option<&Live>) {}

    async fn create(&self, aws: &Aws, desired: &Wanted) -> Result<(), AwsError> {
        self.put(aws, desired, true).await
    }

    async fn update(&self, aws: &Aws, desired: &Wanted, _: &Live) -> Result<(), AwsError> {
        self.put(aws, desired, false).await
    }

    async fn delete(&self, aws: &Aws, _: Live) -> Result<(), AwsError> {
        let name = self.kind.name(self.names);
        aws.ssm.delete_parameter().name(name).send().await.or_missing(NOT_FOUND, &self.label(), op!("ssm:DeleteParameter"))?;
        Ok(())
    }

    /// Present or not, never the value of a secret.
    fn describe(&self, live: &Live) -> Observed {
        match self.kind {
            _ if self.kind.secret() => Observed::present(None, "SecureString"),
            // A certificate is public, but a page of PEM says nothing in a status line.
            Kind::RelayCert => Observed::present(None, "String (PEM certificate)"),
            _ => Observed::present(Some(live.value.clone()), "String"),
        }
    }
}

/// The parameter's value, if it exists and is this stack's.
pub async fn value(aws: &Aws, names: &Names, kind: Kind) -> Result<Option<String>, AwsError> {
    Ok(Parameter { names, kind }.read(aws).await?.filter(|live| live.tagged).map(|live| live.value))
}

/// The numbers of the stack's extra destinations that exist (they are written 1, 2, … but an
/// interrupted deploy may leave a gap, which teardown must still find).
pub async fn extra_destinations(aws: &Aws, names: &Names) -> Result<Vec<u8>, AwsError> {
    let numbers = 1..=MAX_DESTINATIONS as u8;
    let found = futures_util::future::join_all(numbers.clone().map(|n| value(aws, names, Kind::ExtraDestination(n)))).await;
    let mut present = Vec::new();
    for (n, value) in numbers.zip(found) {
        if value?.is_some() {
            present.push(n);
        }
    }
    Ok(present)
}

/// A fresh key pair for the relays' HTTPS: (certificate PEM, private key PEM). Self-signed:
/// relays are reached by IP and the front door pins this exact certificate.
pub fn new_relay_certificate(names: &Names) -> Result<(String, String), AwsError> {
    let made = rcgen::generate_simple_self_signed(vec![format!("{}.relay.ivsctl.invalid", names.stack)])
        .map_err(|e| AwsError::new("relay TLS certificate", "generate", "Internal", e.to_string()))?;
    Ok((made.cert.pem(), made.signing_key.serialize_pem()))
}

/// A fresh WHIP bearer token: 32 random bytes, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS's generator does not fail on Linux after boot; if it ever did, refusing beats a weak token.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_value_is_never_rewritten_and_a_rotated_one_always_is() {
        let names = Names::new(&"ivs".parse().expect("name"));
        let token = Parameter { names: &names, kind: Kind::Token };
        let live = Live { value: "old".into(), tagged: true };
        assert_eq!(token.diff(&Wanted::Keep(Some("new".into())), &live), Action::NoOp);
        assert_eq!(token.diff(&Wanted::Value("old".into()), &live), Action::NoOp);
        assert_eq!(token.diff(&Wanted::Value("new".into()), &live), Action::Update(vec!["value".into()]));
        assert!(matches!(token.diff(&Wanted::Replace("old".into()), &live), Action::Update(_)));
    }
}
