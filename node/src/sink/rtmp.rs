//! RTMP/RTMPS publishing with `rml_rtmp` (sans-IO) over TCP or rustls. The sink connects when
//! the first tag arrives (the core emits none before a keyframe), so a session that never gets
//! media never opens a stream at the ingest. On any failure it reconnects with capped
//! exponential backoff, replays metadata and sequence headers, and resumes at the next keyframe;
//! the WebRTC session never notices beyond its status.
//!
//! Every `select!` branch only reads (both reads are cancel-safe); handling what was read and
//! writing happen in the branch bodies, which run to completion, so a tag arriving while a
//! reply to the server is being written can never cut that write in half.

use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType};
use rml_rtmp::time::RtmpTimestamp;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::queue::TagReceiver;
use super::{Backoff, Headers, SinkContext, observe_sent};
use crate::destination::{DestinationError, RtmpTarget, Transport};
use crate::media::{Tag, TagKind};

/// Connecting, handshaking and getting publish accepted must finish within this.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that blocks this long means the ingest is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Ending the stream (deleteStream, TLS close_notify) gets this long before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// An ingest that hangs up at `connect` or `publish` this many times in a row refuses the stream:
/// the destination is given up.
const TURNED_AWAY_LIMIT: u32 = 3;
/// TCP keepalive on ingest sockets: idle time before the first probe, then the probe interval.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unacknowledged data older than this ends the connection (TCP_USER_TIMEOUT), so a vanished
/// ingest is noticed even while the send buffer still has room.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RtmpError {
    #[error(transparent)]
    Destination(#[from] DestinationError),
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    #[error("RTMP handshake failed: {0}")]
    Handshake(String),
    #[error("RTMP session error: {0}")]
    Session(String),
    #[error("ingest refused: {0}")]
    Refused(String),
    #[error("ingest closed the connection")]
    Closed,
    /// How most servers (nginx-rtmp among them) turn away an unknown app or stream key: they
    /// hang up instead of answering.
    #[error("ingest closed the connection when asked to {0}")]
    ClosedAt(String),
    #[error("ingest did not answer within {0:?}")]
    Timeout(Duration),
}

impl RtmpError {
    /// Whether trying again cannot help: the ingest refused the publish (a wrong app or key), or
    /// the destination itself is not usable. Anything else (network, timeouts, a broken
    /// session) is retried with backoff.
    fn is_final(&self) -> bool {
        match self {
            Self::Refused(_) | Self::ServerName(_) => true,
            Self::Destination(e) => !matches!(e, DestinationError::Unresolvable { .. }),
            _ => false,
        }
    }

    /// A hang-up while waiting for the answer to `step`.
    fn closed_at(self, step: impl FnOnce() -> String) -> Self {
        match self {
            Self::Closed => Self::ClosedAt(step()),
            other => other,
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub(super) async fn run(target: RtmpTarget, mut tags: TagReceiver, ctx: SinkContext) {
    // No stream is opened at the ingest before there is media to put in it.
    let Some(first) = tags.recv().await else {
        ctx.status.closed();
        return;
    };
    let mut headers = Headers::default();
    headers.remember(&first); // the core starts with headers, which every connection replays
    let mut backoff = Backoff::new();
    // Media was skipped (or never sent yet on this connection): resume only at a keyframe.
    let mut resume_at_keyframe = !first.is_header;
    let mut last_timestamp = 0;
    let mut turned_away = 0;
    loop {
        let outcome = publish(&target, &mut tags, &ctx, &mut headers, &mut resume_at_keyframe, &mut last_timestamp, &mut backoff).await;
        let error = match outcome {
            Ok(()) => break,
            Err(e) => e,
        };
        turned_away = if matches!(error, RtmpError::ClosedAt(_)) { turned_away + 1 } else { 0 };
        if error.is_final() || turned_away >= TURNED_AWAY_LIMIT {
            let reason = match turned_away {
                0 => error.to_string(),
                n => format!("ingest refused: {error}, {n} times in a row (a wrong app or stream key?)"),
            };
            tracing::warn!(ingest = %target.tc_url(), error = %reason, "RTMP destination given up");
            ctx.status.failed(reason);
            return; // dropping `tags` tells the session to stop feeding this destination
        }
        let wait = backoff.step();
        tracing::warn!(ingest = %target.tc_url(), %error, retry_in = ?wait, "RTMP ingest failed");
        ctx.status.retrying(error.to_string());
        ctx.session.metrics.rtmp_reconnects.get_or_create(&ctx.label).inc();
        resume_at_keyframe = true;
        // Keep draining while waiting so the session is never blocked by a dead ingest.
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                tag = tags.recv() => match tag {
                    Some(tag) => headers.remember(&tag),
                    None => {
                        ctx.status.closed();
                        return;
                    }
                },
            }
        }
    }
    ctx.status.closed();
}

/// One connection's life: open, replay headers, forward tags until the channel closes (Ok) or
/// the connection fails (Err).
async fn publish(
    target: &RtmpTarget,
    tags: &mut TagReceiver,
    ctx: &SinkContext,
    headers: &mut Headers,
    resume_at_keyframe: &mut bool,
    last_timestamp: &mut u32,
    backoff: &mut Backoff,
) -> Result<(), RtmpError> {
    let mut conn =
        tokio::time::timeout(OPEN_TIMEOUT, Connection::open(target, ctx)).await.map_err(|_| RtmpError::Timeout(OPEN_TIMEOUT))??;
    tracing::info!(ingest = %target.tc_url(), "publishing");
    backoff.reset();
    for header in headers.all() {
        let sent = conn.send(header, *last_timestamp).await?;
        observe_sent(ctx, header, sent);
    }
    if *resume_at_keyframe {
        ctx.session.keyframe_wanted.notify_one();
    }
    loop {
        tokio::select! {
            tag = tags.recv() => {
                let Some(tag) = tag else {
                    conn.finish().await;
                    return Ok(());
                };
                headers.remember(&tag);
                if *resume_at_keyframe && !tag.is_header {
                    if tag.kind == TagKind::Video && tag.keyframe {
                        *resume_at_keyframe = false;
                    } else {
                        continue;
                    }
                }
                *last_timestamp = tag.timestamp_ms;
                let sent = conn.send(&tag, tag.timestamp_ms).await?;
                observe_sent(ctx, &tag, sent);
            }
            read = conn.reader.read(&mut conn.buf) => {
                let n = read?;
                conn.take_server_bytes(n).await?;
            }
        }
    }
}

struct Connection {
    reader: ReadHalf<Box<dyn Stream>>,
    writer: WriteHalf<Box<dyn Stream>>,
    session: ClientSession,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(target: &RtmpTarget, ctx: &SinkContext) -> Result<Self, RtmpError> {
        let addrs = crate::destination::resolve(&ctx.session.dns, target, &ctx.policy).await?;
        let tcp = TcpStream::connect(&addrs[..]).await?;
        tcp.set_nodelay(true)?;
        watch_liveness(&tcp)?;
        let stream: Box<dyn Stream> = match target.transport {
            Transport::Tcp => Box::new(tcp),
            Transport::Tls => {
                let name =
                    rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|_| RtmpError::ServerName(target.host.clone()))?;
                let tls = tokio_rustls::TlsConnector::from(ctx.session.tls.clone()).connect(name, tcp).await?;
                Box::new(tls)
            }
        };
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut buf = vec![0u8; 64 * 1024];
        let remaining = handshake(&mut reader, &mut writer, &mut buf).await?;

        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(target.tc_url());
        let (session, results) = ClientSession::new(config).map_err(|e| RtmpError::Session(e.to_string()))?;
        let mut conn = Self { reader, writer, session, buf };
        conn.write_results(results).await?;
        let results = conn.session.handle_input(&remaining).map_err(|e| RtmpError::Session(e.to_string()))?;
        conn.write_results(results).await?;

        let request = conn.session.request_connection(target.app.clone()).map_err(|e| RtmpError::Session(e.to_string()))?;
        conn.write_results(vec![request]).await?;
        conn.until_event(|event| match event {
            ClientSessionEvent::ConnectionRequestAccepted => Some(Ok(())),
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                Some(Err(RtmpError::Refused(format!("connect to app {:?}: {description}", target.app))))
            }
            _ => None,
        })
        .await
        .map_err(|e| e.closed_at(|| format!("connect to app {:?}", target.app)))?;

        let request = conn
            .session
            .request_publishing(target.stream_key.expose().to_owned(), PublishRequestType::Live)
            .map_err(|e| RtmpError::Session(e.to_string()))?;
        conn.write_results(vec![request]).await?;
        conn.until_event(|event| match event {
            ClientSessionEvent::PublishRequestAccepted => Some(Ok(())),
            ClientSessionEvent::UnhandleableOnStatusCode { code } => Some(Err(RtmpError::Refused(format!("publish: {code}")))),
            _ => None,
        })
        .await
        .map_err(|e| e.closed_at(|| "publish".to_owned()))?;
        Ok(conn)
    }

    /// Sends one tag; returns the bytes written.
    async fn send(&mut self, tag: &Tag, timestamp_ms: u32) -> Result<usize, RtmpError> {
        let timestamp = RtmpTimestamp::new(timestamp_ms);
        let result = match tag.kind {
            TagKind::Metadata => match &tag.info {
                Some(info) => self.session.publish_metadata(&info.to_rtmp()),
                None => return Ok(0),
            },
            TagKind::Video => self.session.publish_video_data(Bytes::clone(&tag.body), timestamp, false),
            TagKind::Audio => self.session.publish_audio_data(Bytes::clone(&tag.body), timestamp, false),
        }
        .map_err(|e| RtmpError::Session(e.to_string()))?;
        self.write_results(vec![result]).await
    }

    /// Handles the `n` bytes the server sent into `buf` while we publish (acks, pings) and
    /// answers them.
    async fn take_server_bytes(&mut self, n: usize) -> Result<(), RtmpError> {
        if n == 0 {
            return Err(RtmpError::Closed);
        }
        let results = self.session.handle_input(&self.buf[..n]).map_err(|e| RtmpError::Session(e.to_string()))?;
        for result in &results {
            if let ClientSessionResult::RaisedEvent(ClientSessionEvent::UnhandleableOnStatusCode { code }) = result {
                tracing::info!(%code, "ingest status");
            }
        }
        self.write_results(results).await.map(drop)
    }

    /// Ends the stream the way RTMP expects (deleteStream), then closes; a peer that does not
    /// take it within `CLOSE_TIMEOUT` is cut off.
    async fn finish(mut self) {
        let close = async {
            if let Ok(results) = self.session.stop_publishing() {
                let _ = self.write_results(results).await;
            }
            let _ = self.writer.shutdown().await;
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
            tracing::debug!("ingest did not take the end of the stream in time; connection dropped");
        }
    }

    async fn write_results(&mut self, results: Vec<ClientSessionResult>) -> Result<usize, RtmpError> {
        let mut written = 0;
        for result in results {
            if let ClientSessionResult::OutboundResponse(packet) = result {
                tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(&packet.bytes))
                    .await
                    .map_err(|_| RtmpError::Timeout(WRITE_TIMEOUT))??;
                written += packet.bytes.len();
            }
        }
        Ok(written)
    }

    async fn until_event(&mut self, mut check: impl FnMut(&ClientSessionEvent) -> Option<Result<(), RtmpError>>) -> Result<(), RtmpError> {
        loop {
            let n = self.reader.read(&mut self.buf).await?;
            if n == 0 {
                return Err(RtmpError::Closed);
            }
            let results = self.session.handle_input(&self.buf[..n]).map_err(|e| RtmpError::Session(e.to_string()))?;
            let mut verdict = None;
            for result in &results {
                if let ClientSessionResult::RaisedEvent(event) = result {
                    verdict = verdict.or_else(|| check(event));
                }
            }
            self.write_results(results).await?;
            if let Some(verdict) = verdict {
                return verdict;
            }
        }
    }
}

/// Keepalive probes and a user timeout, so that a silently vanished ingest fails the connection
/// (and the reconnect starts) in seconds rather than after the kernel's default of ~15 minutes.
fn watch_liveness(tcp: &TcpStream) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(tcp);
    socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE).with_interval(KEEPALIVE_INTERVAL).with_retries(3))?;
    #[cfg(target_os = "linux")]
    socket.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT))?;
    Ok(())
}

async fn handshake(
    reader: &mut ReadHalf<Box<dyn Stream>>,
    writer: &mut WriteHalf<Box<dyn Stream>>,
    buf: &mut [u8],
) -> Result<Vec<u8>, RtmpError> {
    let mut handshake = Handshake::new(PeerType::Client);
    let hello = handshake.generate_outbound_p0_and_p1().map_err(|e| RtmpError::Handshake(e.to_string()))?;
    writer.write_all(&hello).await?;
    loop {
        let n = reader.read(buf).await?;
        if n == 0 {
            return Err(RtmpError::Closed);
        }
        match handshake.process_bytes(&buf[..n]).map_err(|e| RtmpError::Handshake(e.to_string()))? {
            HandshakeProcessResult::InProgress { response_bytes } => writer.write_all(&response_bytes).await?,
            HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                writer.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rml_rtmp::sessions::{ClientSession, ClientSessionConfig};

    #[tokio::test]
    async fn ingest_sockets_probe_a_silent_peer_and_give_up_on_unacknowledged_data() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listener");
        let tcp = tokio::net::TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        super::watch_liveness(&tcp).expect("socket options");
        let socket = socket2::SockRef::from(&tcp);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"), super::KEEPALIVE_IDLE);
        assert_eq!(socket.tcp_keepalive_interval().expect("TCP_KEEPINTVL"), super::KEEPALIVE_INTERVAL);
        assert_eq!(socket.tcp_keepalive_retries().expect("TCP_KEEPCNT"), 3);
        assert_eq!(socket.tcp_user_timeout().expect("TCP_USER_TIMEOUT"), Some(super::TCP_USER_TIMEOUT));
    }

    /// A format 0 chunk on chunk stream 3 carrying a whole AMF0 command message.
    fn command_chunk(payload: &[u8]) -> Vec<u8> {
        let mut chunk = vec![3, 0, 0, 0];
        chunk.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        chunk.extend_from_slice(&[20, 0, 0, 0, 0]);
        chunk.extend_from_slice(payload);
        chunk
    }

    #[test]
    fn deeply_nested_amf0_from_a_server_is_an_error_not_a_stack_overflow() {
        let (mut session, _) = ClientSession::new(ClientSessionConfig::new()).expect("session");
        // Set Chunk Size to the maximum, so that the message below is one chunk.
        session.handle_input(&[2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]).expect("chunk size");
        let mut amf = vec![0x02, 0, 7];
        amf.extend_from_slice(b"_result");
        for _ in 0..250_000 {
            amf.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        let error = session.handle_input(&command_chunk(&amf)).expect_err("refused").to_string();
        assert!(error.contains("nested deeper than 32"), "{error}");
    }

    #[test]
    fn a_command_with_fewer_than_three_values_is_an_error_not_a_panic() {
        // Found by fuzzing (fuzz/fuzz_targets/rtmp_client.rs): an empty AMF0 command message.
        for payload in [&[][..], &[0x02, 0, 1, b'x'], &[0x02, 0, 1, b'x', 0x00, 0, 0, 0, 0, 0, 0, 0, 0]] {
            let (mut session, _) = ClientSession::new(ClientSessionConfig::new()).expect("session");
            let error = session.handle_input(&command_chunk(payload)).expect_err("refused").to_string();
            assert!(error.contains("expected format"), "{error}");
        }
    }

    #[test]
    fn a_server_message_over_one_mebibyte_is_refused_before_it_is_buffered() {
        let (mut session, _) = ClientSession::new(ClientSessionConfig::new()).expect("session");
        let mut header = vec![3, 0, 0, 0];
        header.extend_from_slice(&(2u32 << 20).to_be_bytes()[1..]);
        header.extend_from_slice(&[20, 0, 0, 0, 0]);
        let error = session.handle_input(&header).expect_err("refused").to_string();
        assert!(error.contains("exceeds the limit of 1048576"), "{error}");
    }
}
