//! Where a session publishes: an RTMP/RTMPS ingest or an FLV file, parsed from a URL such as
//! `rtmps://host:443/app/streamkey` or `file://./recordings/{stream}-{time}.flv`.
//!
//! The stream key is a secret: `Display` and `Debug` never show it, and a destination's host
//! is all that status output may name. Client-chosen destinations are checked here too: only
//! `rtmp(s)://`, on an allowed port, and never an address inside the relay's own network
//! (`address`). A refusal names the host, never the address it resolved to.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::address::AddressPolicy;
use crate::dns::Dns;

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestinationError {
    #[error("destination must be rtmp://, rtmps:// or file:// (got {0:?})")]
    UnsupportedScheme(String),
    #[error("destination is not a valid URL: {0}")]
    Malformed(String),
    #[error("destination has no host")]
    NoHost,
    #[error("destination needs a path of the form /app/streamkey")]
    NoStreamKey,
    #[error("a client-chosen destination must be rtmp:// or rtmps://")]
    ClientFile,
    #[error("destination host {host} cannot be resolved: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error("destination host {host} is not allowed: it must resolve to public addresses only")]
    PrivateAddress { host: String },
    #[error("destination port {port} is not allowed (allowed: {allowed})")]
    PortNotAllowed { port: u16, allowed: String },
}

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
}

/// An RTMP ingest: `rtmp[s]://host[:port]/app[/more/app]/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpTarget {
    pub transport: Transport,
    pub host: String,
    pub port: u16,
    /// Application path, e.g. `app` for IVS (everything between host and key).
    pub app: String,
    pub stream_key: Secret,
}

impl RtmpTarget {
    /// `tcUrl` of the RTMP `connect` command (no key).
    pub fn tc_url(&self) -> String {
        format!("{}://{}:{}/{}", self.scheme(), self.host, self.port, self.app)
    }

    fn scheme(&self) -> &'static str {
        match self.transport {
            Transport::Tcp => "rtmp",
            Transport::Tls => "rtmps",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Rtmp(RtmpTarget),
    File(PathBuf),
}

impl fmt::Display for Destination {
    /// The destination with its stream key hidden, safe for logs and status.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rtmp(t) => write!(f, "{}/***", t.tc_url()),
            Self::File(path) => write!(f, "file://{}", path.display()),
        }
    }
}

impl Destination {
    /// Parses a destination URL after filling in `{stream}` and `{time}` (UTC, compact ISO 8601).
    pub fn parse(template: &str, stream: &str, time: jiff::Timestamp) -> Result<Self, DestinationError> {
        Self::parse_url(&template.replace("{stream}", stream).replace("{time}", &time.strftime("%Y%m%dT%H%M%SZ").to_string()))
    }

    /// Parses a destination URL as it is (a template's placeholders stay literal).
    pub fn parse_url(url: &str) -> Result<Self, DestinationError> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Self::File(PathBuf::from(path)));
        }
        let parsed = url::Url::parse(url).map_err(|e| DestinationError::Malformed(e.to_string()))?;
        let (transport, default_port) = match parsed.scheme() {
            "rtmp" => (Transport::Tcp, 1935),
            "rtmps" => (Transport::Tls, 443),
            other => return Err(DestinationError::UnsupportedScheme(other.to_owned())),
        };
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or(DestinationError::NoHost)?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let path = parsed.path().trim_matches('/');
        let (app, key) = path.rsplit_once('/').ok_or(DestinationError::NoStreamKey)?;
        let mut key = key.to_owned();
        if let Some(query) = parsed.query() {
            key = format!("{key}?{query}");
        }
        if app.is_empty() || key.is_empty() {
            return Err(DestinationError::NoStreamKey);
        }
        Ok(Self::Rtmp(RtmpTarget {
            transport,
            host,
            port: parsed.port().unwrap_or(default_port),
            app: app.to_owned(),
            stream_key: Secret::new(key),
        }))
    }

    /// The host (or file path) that status output may show.
    pub fn display_host(&self) -> String {
        match self {
            Self::Rtmp(t) => format!("{}:{}", t.host, t.port),
            Self::File(path) => path.display().to_string(),
        }
    }
}

/// Resolves an ingest's host and applies `policy`; the addresses returned are the ones to
/// connect to.
pub async fn resolve(dns: &Dns, target: &RtmpTarget, policy: &AddressPolicy) -> Result<Vec<SocketAddr>, DestinationError> {
    let addrs = dns
        .resolve(&target.host, target.port)
        .await
        .map_err(|e| DestinationError::Unresolvable { host: target.host.clone(), reason: e.to_string() })?;
    // One inward address refuses the host: a connection could pick any of them.
    if addrs.iter().any(|a| !policy.permits(a.ip())) {
        return Err(DestinationError::PrivateAddress { host: target.host.clone() });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Destination, DestinationError> {
        Destination::parse(url, "cam1", jiff::Timestamp::from_second(1_764_000_000).expect("valid"))
    }

    #[test]
    fn ivs_ingest_url_splits_into_app_and_key() {
        let Ok(Destination::Rtmp(t)) = parse("rtmps://abc.global-contribute.live-video.net:443/app/sk_us-west-2_secret") else {
            panic!("parse")
        };
        assert_eq!(
            (t.transport, t.host.as_str(), t.port, t.app.as_str()),
            (Transport::Tls, "abc.global-contribute.live-video.net", 443, "app")
        );
        assert_eq!(t.stream_key.expose(), "sk_us-west-2_secret");
        assert_eq!(t.tc_url(), "rtmps://abc.global-contribute.live-video.net:443/app");
    }

    #[test]
    fn the_stream_key_never_shows_in_display_or_debug() {
        let d = parse("rtmp://127.0.0.1/live/topsecret").expect("parse");
        assert_eq!(d.to_string(), "rtmp://127.0.0.1:1935/live/***");
        assert!(!format!("{d:?}").contains("topsecret"));
    }

    #[test]
    fn templates_fill_in_stream_and_time() {
        assert_eq!(
            parse("file://./recordings/{stream}-{time}.flv"),
            Ok(Destination::File("./recordings/cam1-20251124T160000Z.flv".into()))
        );
        let Ok(Destination::Rtmp(t)) = parse("rtmp://host/live/{stream}") else { panic!("parse") };
        assert_eq!(t.stream_key.expose(), "cam1");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert_eq!(parse("http://host/app/key"), Err(DestinationError::UnsupportedScheme("http".into())));
        assert_eq!(parse("rtmp://host/keyonly"), Err(DestinationError::NoStreamKey));
        assert!(matches!(parse("rtmp://"), Err(DestinationError::Malformed(_) | DestinationError::NoHost)));
    }

    #[tokio::test]
    async fn a_client_destination_resolving_to_loopback_is_refused() {
        let Ok(Destination::Rtmp(t)) = parse("rtmp://localhost:1935/app/key") else { panic!("parse") };
        let dns = Dns::new(&[]);
        let client = AddressPolicy::Restricted(std::sync::Arc::default());
        let refused = resolve(&dns, &t, &client).await.expect_err("loopback refused");
        assert_eq!(refused, DestinationError::PrivateAddress { host: "localhost".into() });
        assert!(!refused.to_string().contains("127.0.0.1"), "the refusal names the address: {refused}");
        assert!(resolve(&dns, &t, &AddressPolicy::Any).await.is_ok());
    }
}
