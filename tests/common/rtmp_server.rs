//! RTMP ingests written in the tests, on loopback: one that records what is published to an
//! FLV file while pelting the publisher with control messages (pings, window sizes) and
//! reading in bursts, and hostile ones that answer the handshake with bytes of the test's
//! choosing. Built on `rml_rtmp`'s server session, so the protocol side is a real peer's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The control traffic of a `Record` ingest, over all its connections, and a switch for it.
#[derive(Debug, Default)]
pub struct ControlCounts {
    /// While set, the ingest neither reads nor pings: the publisher's writes fill the kernel's
    /// buffers and then block.
    pub hold: AtomicBool,
    pub pings_sent: AtomicUsize,
    /// Ping responses from the publisher.
    pub pongs: AtomicUsize,
    /// Acknowledgements from the publisher (it owes one per window of bytes we sent).
    pub acks: AtomicUsize,
}

/// What the test ingest does with each connection.
#[derive(Clone)]
pub enum Behaviour {
    /// Accept the publish and record it; every `ping_every`, send a ping request and a window
    /// acknowledgement size of a few dozen bytes (so the publisher's acknowledgements and ping
    /// responses interleave on its chunk stream 2, where one lost message garbles the headers
    /// compressed against it); after every read, pause `read_pause` (back-pressure on the
    /// sender).
    Record { out: PathBuf, ping_every: Duration, read_pause: Duration },
    /// After the handshake, send these bytes, then keep reading until the peer hangs up.
    Hostile(Arc<Vec<u8>>),
    /// Accept the publish, then never read again, on a socket with a tiny receive buffer: the
    /// publisher's writes block within a fraction of a second (an ingest that hung).
    Stall,
}

pub struct TestIngest {
    pub port: u16,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    pub control: Arc<ControlCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestIngest {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestIngest {
    pub async fn start(behaviour: Behaviour) -> TestIngest {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if matches!(behaviour, Behaviour::Stall | Behaviour::Record { .. }) {
            // Accepted sockets inherit it: a receive window of a few KiB, so that the
            // publisher's writes wait on our reads.
            socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        }
        socket.bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let listener: TcpListener = socket.listen(16).expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let control = Arc::new(ControlCounts::default());
        let (counter, counts) = (connections.clone(), control.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let (behaviour, counts) = (behaviour.clone(), counts.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(socket, behaviour, &counts).await {
                        eprintln!("test ingest: connection failed: {e}");
                    }
                });
            }
        });
        TestIngest { port, connections, control, task }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }
}

async fn serve(mut socket: TcpStream, behaviour: Behaviour, counts: &ControlCounts) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut handshake = Handshake::new(PeerType::Server);
    let remaining = loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        match handshake.process_bytes(&buf[..n]).map_err(std::io::Error::other)? {
            HandshakeProcessResult::InProgress { response_bytes } => socket.write_all(&response_bytes).await?,
            HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                socket.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    match behaviour {
        Behaviour::Hostile(bytes) => {
            socket.write_all(&bytes).await?;
            while socket.read(&mut buf).await? > 0 {}
            Ok(())
        }
        Behaviour::Record { out, ping_every, read_pause } => record(socket, remaining, &out, ping_every, read_pause, counts).await,
        Behaviour::Stall => stall(socket, remaining).await,
    }
}

async fn record(
    mut socket: TcpStream,
    remaining: Vec<u8>,
    out: &Path,
    ping_every: Duration,
    read_pause: Duration,
    counts: &ControlCounts,
) -> std::io::Result<()> {
    let (mut session, results) = ServerSession::new(ServerSessionConfig::new()).map_err(std::io::Error::other)?;
    let mut file = Vec::new();
    file.extend_from_slice(&ivs_relay::media::flv::file_header(true));
    let mut pending = results;
    pending.extend(session.handle_input(&remaining).map_err(std::io::Error::other)?);
    let outcome = serve_publish(&mut socket, &mut session, pending, &mut file, (ping_every, read_pause), counts).await;
    // What arrived is kept either way, so that a test sees how far the stream got.
    tokio::fs::write(out, &file).await?;
    outcome
}

async fn serve_publish(
    socket: &mut TcpStream,
    session: &mut ServerSession,
    mut pending: Vec<ServerSessionResult>,
    file: &mut Vec<u8>,
    (ping_every, read_pause): (Duration, Duration),
    counts: &ControlCounts,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut ping = tokio::time::interval(ping_every);
    let mut window = 64u32;
    loop {
        while !pending.is_empty() {
            let results: Vec<ServerSessionResult> = std::mem::take(&mut pending);
            for result in results {
                match result {
                    ServerSessionResult::OutboundResponse(packet) => socket.write_all(&packet.bytes).await?,
                    ServerSessionResult::RaisedEvent(event) => {
                        match event {
                            ServerSessionEvent::PingResponseReceived { .. } => counts.pongs.fetch_add(1, Ordering::Relaxed),
                            ServerSessionEvent::AcknowledgementReceived { .. } => counts.acks.fetch_add(1, Ordering::Relaxed),
                            _ => 0,
                        };
                        pending.extend(take_event(session, event, file)?);
                    }
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
        }
        if counts.hold.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        tokio::select! {
            read = socket.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    break;
                }
                pending = session.handle_input(&buf[..n]).map_err(std::io::Error::other)?;
                tokio::time::sleep(read_pause).await;
            }
            _ = ping.tick() => {
                let (packet, _) = session.send_ping_request().map_err(std::io::Error::other)?;
                socket.write_all(&packet.bytes).await?;
                counts.pings_sent.fetch_add(1, Ordering::Relaxed);
                // A window acknowledgement size with every ping, as some ingests send mid-stream.
                window = if window == 64 { 96 } else { 64 };
                socket.write_all(&window_ack_size(window)).await?;
            }
        }
    }
    Ok(())
}

async fn stall(mut socket: TcpStream, remaining: Vec<u8>) -> std::io::Result<()> {
    let (mut session, results) = ServerSession::new(ServerSessionConfig::new()).map_err(std::io::Error::other)?;
    let mut pending = results;
    pending.extend(session.handle_input(&remaining).map_err(std::io::Error::other)?);
    let mut buf = vec![0u8; 4096];
    let mut publishing = false;
    loop {
        for result in std::mem::take(&mut pending) {
            match result {
                ServerSessionResult::OutboundResponse(packet) => socket.write_all(&packet.bytes).await?,
                ServerSessionResult::RaisedEvent(event) => {
                    publishing |= matches!(event, ServerSessionEvent::PublishStreamRequested { .. });
                    pending.extend(take_event(&mut session, event, &mut Vec::new())?);
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        if !pending.is_empty() {
            continue;
        }
        if publishing {
            break;
        }
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        pending = session.handle_input(&buf[..n]).map_err(std::io::Error::other)?;
    }
    // The publish is accepted (its answer written); from here on nothing is read.
    std::future::pending::<()>().await;
    Ok(())
}

fn take_event(session: &mut ServerSession, event: ServerSessionEvent, file: &mut Vec<u8>) -> std::io::Result<Vec<ServerSessionResult>> {
    use ivs_relay::media::flv::{TAG_AUDIO, TAG_VIDEO, file_tag};
    match event {
        ServerSessionEvent::ConnectionRequested { request_id, .. } | ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
            session.accept_request(request_id).map_err(std::io::Error::other)
        }
        ServerSessionEvent::VideoDataReceived { data, timestamp, .. } => {
            file_tag(TAG_VIDEO, timestamp.value, &data, file);
            Ok(Vec::new())
        }
        ServerSessionEvent::AudioDataReceived { data, timestamp, .. } => {
            file_tag(TAG_AUDIO, timestamp.value, &data, file);
            Ok(Vec::new())
        }
        _ => Ok(Vec::new()),
    }
}

/// One chunk: format 0 on chunk stream `csid` (< 64), message stream 0, timestamp 0.
pub fn chunk(csid: u8, type_id: u8, message_length: usize, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![csid & 0x3f, 0, 0, 0];
    out.extend_from_slice(&(message_length as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

/// A continuation chunk (format 3) on `csid`.
pub fn continuation(csid: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xC0 | (csid & 0x3f)];
    out.extend_from_slice(payload);
    out
}

/// Set Chunk Size (protocol control message 1) on chunk stream 2.
pub fn set_chunk_size(size: u32) -> Vec<u8> {
    chunk(2, 1, 4, &size.to_be_bytes())
}

/// Window Acknowledgement Size (protocol control message 5), on a chunk stream of its own
/// (the server session's serializer compresses headers on chunk stream 2 against its own
/// previous ones).
pub fn window_ack_size(size: u32) -> Vec<u8> {
    chunk(50, 5, 4, &size.to_be_bytes())
}

/// An AMF0 command `_result` whose argument is `depth` objects nested in each other.
pub fn deeply_nested_result(depth: usize) -> Vec<u8> {
    let mut amf = vec![0x02, 0, 7];
    amf.extend_from_slice(b"_result");
    amf.push(0x00);
    amf.extend_from_slice(&1f64.to_be_bytes());
    for _ in 0..depth {
        amf.extend_from_slice(&[0x03, 0, 1, b'a']);
    }
    amf
}
