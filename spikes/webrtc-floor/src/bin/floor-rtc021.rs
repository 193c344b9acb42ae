//! The floor of the sans-IO stack: `rtc` 0.21 peer connections, every session on one UDP
//! socket read by one thread of ours — no task, lock or channel per packet. Answers and routing
//! are the relay's own (`ivs_relay::peer::answer`, `ivs_relay::transport::demux`, which grew out
//! of this spike); each session's timers are one deadline the loop keeps.
//! Nothing is done with the media but counting it — or, with `FLOOR_MEDIA_CORE=1` in its environment, what the relay
//! does with it up to the sink: the relay's own `MediaCore` (reordering, H.264 access units,
//! FLV tags, the timeline) and Opus → AAC, inline on the same thread; the tags are dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use ivs_relay::media::aac::{AacFrame, OpusToAac};
use ivs_relay::media::rtp::RtpPacket;
use ivs_relay::media::{CoreConfig, Input, MediaCore, Output};
use ivs_relay::peer;
use ivs_relay::transport::demux::Routes;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use webrtc_floor::{Counters, Engine};

/// Opus's payload type in our answer; everything else is H.264.
const OPUS: u8 = 111;

/// The relay's media work for one session, done where the packets are read.
struct Core {
    media: MediaCore,
    transcoder: OpusToAac,
    frames: Vec<AacFrame>,
}

impl Core {
    fn new() -> anyhow::Result<Self> {
        let transcoder = OpusToAac::new(128_000)?;
        let media = MediaCore::new(CoreConfig { audio: Some(transcoder.track()), ..CoreConfig::default() });
        Ok(Self { media, transcoder, frames: Vec::new() })
    }

    fn take(&mut self, now: Instant, packet: rtc::rtp::packet::Packet, counters: &Counters) {
        let rtp = RtpPacket {
            sequence_number: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload: packet.payload,
        };
        let input = if packet.header.payload_type == OPUS { Input::Audio(&rtp) } else { Input::Video(&rtp) };
        self.media.handle_input(now, input);
        self.run(counters);
    }

    fn run(&mut self, counters: &Counters) {
        while let Some(output) = self.media.poll_output() {
            // Tags are counted and dropped, keyframe requests ignored: the sink is not what is
            // measured.
            match output {
                Output::Transcode(opus) => {
                    self.frames.clear();
                    if self.transcoder.push(opus.arrived, opus.rtp, &opus.payload, &mut self.frames).is_ok() {
                        self.media.handle_input(opus.arrived, Input::Aac(&self.frames));
                    }
                }
                Output::Tag(_) => {
                    counters.tags.fetch_add(1, Ordering::Relaxed);
                }
                Output::RequestKeyframe => {}
            }
        }
    }

    fn tick(&mut self, now: Instant, counters: &Counters) {
        if self.media.next_wake().is_some_and(|at| at <= now) {
            self.media.handle_input(now, Input::Tick);
            self.run(counters);
        }
    }
}

enum Command {
    Offer { sdp: String, reply: oneshot::Sender<anyhow::Result<(String, u64)>> },
    Close(u64),
}

struct FloorRtc {
    commands: mpsc::UnboundedSender<Command>,
}

impl Engine for FloorRtc {
    async fn answer(&self, sdp: String) -> anyhow::Result<(String, u64)> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Offer { sdp, reply }).map_err(|_| anyhow::anyhow!("media thread gone"))?;
        answer.await?
    }

    fn close(&self, session: u64) {
        let _ = self.commands.send(Command::Close(session));
    }
}

struct Session {
    pc: RTCPeerConnection,
    core: Option<Core>,
    deadline: Option<Instant>,
    connected: bool,
    ended: bool,
}

impl Session {
    /// Sends what the peer connection wrote, takes its events and media, and keeps its next
    /// deadline.
    fn drain(&mut self, socket: &UdpSocket, counters: &Counters) {
        while let Some(datagram) = self.pc.poll_write() {
            // Loopback never fills the send buffer here; a full one loses the datagram, as
            // the network would.
            let _ = socket.try_send_to(&datagram.message, datagram.transport.peer_addr);
        }
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                match state {
                    RTCPeerConnectionState::Connected if !self.connected => {
                        self.connected = true;
                        counters.live.fetch_add(1, Ordering::Relaxed);
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => self.ended = true,
                    _ => {}
                }
            }
        }
        let now = Instant::now();
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                counters.received(packet.payload.len());
                if let Some(core) = &mut self.core {
                    core.take(now, packet, counters);
                }
            }
        }
        let core_wake = self.core.as_mut().and_then(|core| {
            core.tick(now, counters);
            core.media.next_wake()
        });
        self.deadline = [self.pc.poll_timeout(), core_wake].into_iter().flatten().min();
    }
}

struct Media {
    with_core: bool,
    /// With `FLOOR_PACE_MS=N`: after draining the socket, wait N ms before looking again, so the
    /// thread wakes at most 1000/N times a second for media instead of once per datagram
    /// (the kernel's buffer holds what arrives meanwhile; it costs up to N ms of latency).
    pace: Option<Duration>,
    socket: UdpSocket,
    local: SocketAddr,
    counters: Arc<Counters>,
    sessions: HashMap<u64, Session>,
    routes: Routes,
    next_id: u64,
}

impl Media {
    fn command(&mut self, command: Command) {
        match command {
            Command::Offer { sdp, reply } => {
                let core = if self.with_core { Core::new().map(Some) } else { Ok(None) };
                let answered = core.and_then(|core| Ok((core, peer::answer(sdp, &[self.local])?))).map(|(core, answered)| {
                    let peer::Answered { pc, sdp: answer, ufrag } = answered;
                    let id = self.next_id;
                    self.next_id += 1;
                    let mut session = Session { pc, core, deadline: None, connected: false, ended: false };
                    session.drain(&self.socket, &self.counters);
                    self.sessions.insert(id, session);
                    self.routes.add(id, ufrag);
                    (answer, id)
                });
                let _ = reply.send(answered);
            }
            Command::Close(id) => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    let _ = session.pc.close();
                    session.drain(&self.socket, &self.counters);
                    session.ended = true;
                }
            }
        }
    }

    fn datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        let Some(id) = self.routes.route(datagram, from) else { return };
        let Some(session) = self.sessions.get_mut(&id) else { return };
        let transport = TransportContext { local_addr: self.local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP };
        // A datagram the stack cannot use (say, media before DTLS is up) costs only itself.
        let _ = session.pc.handle_read(TaggedBytesMut { now: Instant::now(), transport, message: BytesMut::from(datagram) });
        session.drain(&self.socket, &self.counters);
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        for session in self.sessions.values_mut() {
            if session.deadline.is_some_and(|d| d <= now) {
                // The deadline may be the core's, not the peer connection's: a timeout that
                // is not due yet is a no-op for it.
                let _ = session.pc.handle_timeout(now);
                session.drain(&self.socket, &self.counters);
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        self.sessions.values().filter_map(|s| s.deadline).min().unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    fn reap(&mut self) {
        let ended: Vec<u64> = self.sessions.iter().filter(|(_, s)| s.ended).map(|(id, _)| *id).collect();
        for id in ended {
            if let Some(session) = self.sessions.remove(&id)
                && session.connected
            {
                self.counters.live.fetch_sub(1, Ordering::Relaxed);
            }
            self.routes.remove(id);
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        loop {
            timer.as_mut().reset(self.next_deadline().into());
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                readable = self.socket.readable() => {
                    if readable.is_err() {
                        return;
                    }
                    // Everything queued, before the loop turns again.
                    while let Ok((n, from)) = self.socket.try_recv_from(&mut buf) {
                        self.datagram(&buf[..n], from);
                    }
                    if let Some(pace) = self.pace {
                        tokio::time::sleep(pace).await;
                    }
                }
                () = &mut timer => self.timeouts(),
            }
            self.reap();
        }
    }
}

fn main() -> anyhow::Result<()> {
    let ports = webrtc_floor::ports()?;
    let counters = Arc::new(Counters::default());
    let (commands, receiver) = mpsc::unbounded_channel();
    let socket = std::net::UdpSocket::bind(ports.udp).with_context(|| format!("bind {}", ports.udp))?;
    socket.set_nonblocking(true)?;
    let media_counters = counters.clone();
    std::thread::Builder::new().name("media".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            let socket = UdpSocket::from_std(socket)?;
            let media = Media {
                with_core: std::env::var_os("FLOOR_MEDIA_CORE").is_some(),
                pace: std::env::var("FLOOR_PACE_MS").ok().and_then(|ms| ms.parse().ok()).map(Duration::from_millis),
                local: socket.local_addr()?,
                socket,
                counters: media_counters,
                sessions: HashMap::new(),
                routes: Routes::default(),
                next_id: 1,
            };
            media.run(receiver).await;
            anyhow::Ok(())
        })
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(webrtc_floor::serve(ports.http, FloorRtc { commands }, counters))
}
