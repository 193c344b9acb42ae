//! Every session's WebRTC traffic on one UDP socket, read by one thread: the media thread owns
//! all the (sans-IO) peer connections, hands each datagram to its connection (`demux`), keeps
//! their timers, and passes each session its media in batches — no task, lock or channel per
//! packet. The sessions' own tasks and their sinks run there too (`Transport::spawn`), so
//! handing a session its packets, or a sink its tags, wakes no other thread; only the audio
//! codecs (the `ivs-audio` workers) and the HTTP API run elsewhere. A session talks to its
//! connection through a `PeerLink`.

pub mod demux;
mod media_loop;
mod moderation;
mod receive;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use crate::media::clock::Track;
use crate::media::rtp::RtpPacket;
use crate::metrics::MediaCounters;
use crate::peer::{self, NegotiationError};
use demux::PeerId;

/// The name the thread carries in `top -H` and `/proc/<pid>/task/*/comm`.
pub const THREAD_NAME: &str = "ivs-media";

/// Batches of events a session may have waiting before new ones are dropped (a session that
/// far behind has stalled; its media timeout ends it).
const SESSION_QUEUE: usize = 256;

/// Where ICE listens and what it advertises.
#[derive(Debug, Clone)]
pub struct IceSettings {
    /// The UDP socket all sessions share.
    pub bind: SocketAddr,
    /// Advertised instead of local addresses (1:1 NAT), e.g. the task's public IP.
    pub public_ip: Option<IpAddr>,
    /// Only loopback candidates: `ivsctl local` on 127.0.0.1.
    pub loopback_only: bool,
    /// While busy, the media thread wakes at most once per this long (`moderation`); zero: on
    /// every datagram.
    pub receive_window: Duration,
}

/// What a session's connection tells it.
#[derive(Debug)]
pub enum PeerEvent {
    /// A packet, with when its datagram was read: the start of the relay's latency.
    Rtp(Track, RtpPacket, Instant),
    /// The publisher's clock for a track: NTP time (RFC 3550 format) at RTP time `rtp`.
    SenderReport { track: Track, ntp: u64, rtp: u32 },
}

/// The media thread, from everywhere else.
pub struct Transport {
    commands: mpsc::UnboundedSender<media_loop::Command>,
    /// The media thread's runtime, for the sessions' tasks.
    runtime: tokio::runtime::Handle,
    /// Where publishers reach the socket: the host candidates of every answer.
    candidates: Arc<[SocketAddr]>,
    next_id: AtomicU64,
}

/// A session's end of its peer connection; dropped, it closes the connection.
pub struct PeerLink {
    id: PeerId,
    commands: mpsc::UnboundedSender<media_loop::Command>,
}

impl PeerLink {
    /// Asks the publisher for a keyframe (RTCP PLI), once its video has started.
    pub fn request_keyframe(&self) {
        let _ = self.commands.send(media_loop::Command::RequestKeyframe(self.id));
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        let _ = self.commands.send(media_loop::Command::Close(self.id));
    }
}

/// A connection's events come in batches: what one pass over the socket read for it.
pub type PeerEvents = mpsc::Receiver<Vec<PeerEvent>>;

impl Transport {
    /// Binds the socket and starts the media thread, which counts what it does in `counters`.
    pub fn start(ice: &IceSettings, counters: MediaCounters) -> anyhow::Result<Self> {
        let socket = media_socket(ice.bind)?;
        let local = socket.local_addr()?;
        let candidates: Arc<[SocketAddr]> = advertised(ice).into_iter().map(|ip| SocketAddr::new(ip, local.port())).collect();
        anyhow::ensure!(!candidates.is_empty(), "no address to advertise for WebRTC: give --public-ip or --stun");
        tracing::info!(?candidates, "WebRTC media on one UDP port");
        let (commands, inbox) = mpsc::unbounded_channel();
        let runtime = moderation::runtime(ice.receive_window, counters.wakeups.clone())?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || runtime.block_on(media_loop::run(socket, local, inbox, counters.datagrams)))
            .context("cannot start the media thread")?;
        Ok(Self { commands, runtime: handle, candidates, next_id: AtomicU64::new(1) })
    }

    /// The media thread's runtime.
    pub fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime.clone()
    }

    /// Runs a session's task on the media thread, beside its connection. It must never block:
    /// every session's packets wait while it runs.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(task)
    }

    /// Answers `offer` (checked, its candidates filtered) and hands the connection to the media
    /// thread; the answer is valid from the moment this returns.
    pub async fn open(&self, offer: String) -> Result<(String, PeerLink, PeerEvents), NegotiationError> {
        let candidates = self.candidates.clone();
        // A certificate and a few SDP passes: milliseconds of CPU, kept off the media thread
        // (where every session's packets would wait for them) and off the async workers.
        let answered = tokio::task::spawn_blocking(move || peer::answer(offer, &candidates))
            .await
            .map_err(|e| NegotiationError::new(format!("answering stopped: {e}")))??;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events, received) = mpsc::channel(SESSION_QUEUE);
        let sdp = answered.sdp.clone();
        self.commands
            .send(media_loop::Command::Adopt { id, answered: Box::new(answered), events })
            .map_err(|_| NegotiationError::new("the media thread stopped"))?;
        Ok((sdp, PeerLink { id, commands: self.commands.clone() }, received))
    }
}

/// The addresses put in every answer's candidates.
fn advertised(ice: &IceSettings) -> Vec<IpAddr> {
    if let Some(ip) = ice.public_ip {
        return vec![ip];
    }
    // On loopback, and on a socket bound to one address, that address is the only one that
    // reaches the socket.
    if ice.loopback_only || !ice.bind.ip().is_unspecified() {
        return vec![ice.bind.ip()];
    }
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.into_iter().map(|i| i.ip()).filter(|ip| ip.is_ipv4() && !ip.is_loopback()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list network interfaces");
            Vec::new()
        }
    }
}

/// What the media socket's kernel receive buffer is asked to hold: every session's packets
/// arrive on this one socket, and one 720p keyframe is 100-200 kB arriving at once (fast links
/// deliver it unpaced), while Linux's default of 208 KiB holds one or two. Each loss costs a NACK
/// and a retransmission, or a PLI and a new keyframe, which load the socket further.
const MEDIA_RECEIVE_BUFFER: usize = 8 << 20;

/// The one UDP socket all WebRTC media uses, with a receive buffer sized for many sessions.
fn media_socket(bind: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // The kernel caps the size at net.core.rmem_max; what it granted is logged.
    if let Err(e) = socket.set_recv_buffer_size(MEDIA_RECEIVE_BUFFER) {
        tracing::warn!(error = %e, "cannot size the media socket's receive buffer");
    }
    // Linux books twice the size granted (half for its own overhead) and reports that.
    let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    if granted < MEDIA_RECEIVE_BUFFER {
        tracing::info!(
            bytes = granted,
            wanted = MEDIA_RECEIVE_BUFFER,
            "media socket receive buffer capped by net.core.rmem_max: raise it for many sessions"
        );
    } else {
        tracing::info!(bytes = granted, "media socket receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into()).with_context(|| format!("cannot bind WebRTC UDP port {bind}"))?;
    Ok(socket.into())
}
