//! The media thread's loop: one current-thread runtime, one socket, every peer connection.
//! Each turn it takes commands (new connections first, so a publisher's first check finds its
//! connection), reads every datagram queued on the socket, runs the timers that are due, and
//! then hands each session what was read for it in one batch. The socket is read in batches,
//! each datagram stamped with its arrival by the kernel (`receive`): the thread may have let it
//! wait (`moderation`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use foldhash::HashMap as FastMap;
use prometheus_client::metrics::counter::Counter;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::demux::{PeerId, Routes};
use super::receive::BatchReceiver;
use super::{PeerEvent, SESSION_QUEUE};
use crate::media::clock::Track;
use crate::media::rtp::RtpPacket;
use crate::peer::Answered;

/// Most batches taken in one turn, so that a flood cannot hold the thread (and every session's
/// tags) for longer than this many datagrams cost (16 × 32: a quarter of a million a second at
/// one turn per 2 ms, ~18 times what 50 publishers send).
const MOST_BATCHES_PER_TURN: usize = 16;

pub enum Command {
    Adopt { id: PeerId, answered: Box<Answered>, events: mpsc::Sender<Vec<PeerEvent>> },
    RequestKeyframe(PeerId),
    Close(PeerId),
}

/// One publisher's connection and what the loop keeps for it.
struct Peer {
    pc: RTCPeerConnection,
    events: mpsc::Sender<Vec<PeerEvent>>,
    /// Read this turn, not yet handed over.
    pending: Vec<PeerEvent>,
    /// Track ids the connection named in `OnTrack`, and their kinds: two or so, looked up for
    /// every packet, where comparing beats hashing the id.
    tracks: Vec<(String, Track)>,
    /// Where keyframe requests go: the video receiver, and the SSRC its packets carry.
    video: Option<RTCRtpReceiverId>,
    video_ssrc: Option<u32>,
    /// The connection's next timer, as filed in the loop's `timers`.
    deadline: Option<Instant>,
    ended: bool,
}

impl Peer {
    fn new(pc: RTCPeerConnection, events: mpsc::Sender<Vec<PeerEvent>>) -> Self {
        Self { pc, events, pending: Vec::new(), tracks: Vec::new(), video: None, video_ssrc: None, deadline: None, ended: false }
    }

    /// Sends what the connection wrote (and lets answers from there lead back to it), and takes
    /// what it read and what happened to it.
    fn drain(&mut self, id: PeerId, socket: &UdpSocket, routes: &mut Routes) {
        while let Some(datagram) = self.pc.poll_write() {
            let to = datagram.transport.peer_addr;
            routes.learn(id, to);
            // A full send buffer loses the datagram, as the network would; the stack repeats
            // what matters (checks, handshakes, feedback).
            let _ = socket.try_send_to(&datagram.message, to);
        }
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = self.pc.rtp_receiver(init.receiver_id).map(|r| r.track().kind());
                    let track = match kind {
                        Some(RtpCodecKind::Video) => Track::Video,
                        Some(RtpCodecKind::Audio) => Track::Audio,
                        _ => continue,
                    };
                    if track == Track::Video {
                        self.video = Some(init.receiver_id);
                    }
                    self.tracks.retain(|(id, _)| *id != init.track_id);
                    self.tracks.push((init.track_id, track));
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    tracing::debug!(?state, "peer connection state");
                    if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                        tracing::info!(?state, "peer connection ended");
                        self.ended = true;
                    }
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { now, message }) = self.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    let Some(track) = self.track(&track_id) else { continue };
                    if track == Track::Video {
                        self.video_ssrc = Some(packet.header.ssrc);
                    }
                    let rtp = RtpPacket {
                        sequence_number: packet.header.sequence_number,
                        timestamp: packet.header.timestamp,
                        marker: packet.header.marker,
                        payload: packet.payload,
                    };
                    self.pending.push(PeerEvent::Rtp(track, rtp, now));
                }
                RTCMessage::RtcpPacket(track_id, packets) => {
                    let Some(track) = self.track(&track_id) else { continue };
                    for sr in packets.iter().filter_map(|p| p.as_any().downcast_ref::<SenderReport>()) {
                        self.pending.push(PeerEvent::SenderReport { track, ntp: sr.ntp_time, rtp: sr.rtp_time });
                    }
                }
                _ => {}
            }
        }
    }

    fn track(&self, track_id: &str) -> Option<Track> {
        self.tracks.iter().find(|(id, _)| id == track_id).map(|&(_, track)| track)
    }

    /// Hands the session what was read for it. A session a whole queue behind loses the batch
    /// (its media timeout ends it if it never catches up); one that is gone ends the connection.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.events.try_send(std::mem::take(&mut self.pending)) {
            Ok(()) => {}
            Err(TrySendError::Full(lost)) => {
                tracing::debug!(events = lost.len(), queue = SESSION_QUEUE, "session behind; media dropped");
            }
            Err(TrySendError::Closed(_)) => self.ended = true,
        }
    }

    fn request_keyframe(&mut self, now: Instant) {
        let (Some(receiver), Some(media_ssrc)) = (self.video, self.video_ssrc) else { return };
        let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
        if let Some(mut receiver) = self.pc.rtp_receiver(receiver)
            && let Err(e) = receiver.write_rtcp(now, vec![Box::new(pli)])
        {
            tracing::debug!(error = %e, "PLI not sent");
        }
    }
}

struct MediaLoop {
    commands: mpsc::UnboundedReceiver<Command>,
    socket: UdpSocket,
    local: SocketAddr,
    peers: FastMap<PeerId, Peer>,
    routes: Routes,
    /// Every connection's next deadline, soonest first.
    timers: BTreeSet<(Instant, PeerId)>,
    /// Connections read from this turn, to flush and reschedule.
    touched: Vec<PeerId>,
    /// Datagrams read, for `/metrics`.
    datagrams: Counter,
}

impl MediaLoop {
    fn command(&mut self, command: Command) {
        let now = Instant::now();
        let id = match command {
            Command::Adopt { id, .. } | Command::RequestKeyframe(id) | Command::Close(id) => id,
        };
        match command {
            Command::Adopt { id, answered, events } => {
                let Answered { pc, ufrag, .. } = *answered;
                tracing::debug!(peer = id, ufrag, "peer connection adopted");
                self.routes.add(id, ufrag);
                self.peers.insert(id, Peer::new(pc, events));
            }
            Command::RequestKeyframe(id) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.request_keyframe(now);
                }
            }
            Command::Close(id) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    // Tells the publisher (DTLS close_notify) before the state goes.
                    let _ = peer.pc.close();
                    peer.ended = true;
                }
            }
        }
        self.touched.push(id);
    }

    fn datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        let id = match self.routes.route(datagram, from) {
            Some(id) => id,
            // Its connection may be waiting in the queue behind the datagrams read before it
            // (an answer goes out as soon as its connection is queued here).
            None if self.take_commands() => match self.routes.route(datagram, from) {
                Some(id) => id,
                None => return,
            },
            None => {
                tracing::trace!(%from, bytes = datagram.len(), "datagram for no peer connection");
                return;
            }
        };
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let transport = TransportContext { local_addr: self.local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP };
        // A datagram the stack cannot use (media before DTLS is up, a forged check) costs only
        // itself.
        if let Err(e) = peer.pc.handle_read(TaggedBytesMut { now, transport, message: BytesMut::from(datagram) }) {
            tracing::trace!(peer = id, error = %e, "datagram refused");
        }
        self.touched.push(id);
    }

    /// Carries out every command waiting; `false` when there was none.
    fn take_commands(&mut self) -> bool {
        let mut any = false;
        while let Ok(command) = self.commands.try_recv() {
            self.command(command);
            any = true;
        }
        any
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        while let Some(&(at, id)) = self.timers.first()
            && at <= now
        {
            self.timers.pop_first();
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.deadline = None;
                let _ = peer.pc.handle_timeout(now);
                self.touched.push(id);
            }
        }
    }

    /// Drains, flushes and reschedules every connection touched this turn, and lets go of those
    /// that ended.
    fn settle(&mut self) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for id in touched.drain(..) {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            peer.drain(id, &self.socket, &mut self.routes);
            peer.flush();
            let deadline = peer.pc.poll_timeout();
            if peer.deadline != deadline {
                if let Some(old) = peer.deadline {
                    self.timers.remove(&(old, id));
                }
                if let Some(new) = deadline {
                    self.timers.insert((new, id));
                }
                peer.deadline = deadline;
            }
            if peer.ended {
                if let Some(old) = peer.deadline {
                    self.timers.remove(&(old, id));
                }
                // Dropping its sender tells the session the connection is gone.
                self.peers.remove(&id);
                self.routes.remove(id);
            }
        }
        self.touched = touched;
    }

    fn next_deadline(&self) -> tokio::time::Instant {
        let at = self.timers.first().map_or_else(|| Instant::now() + Duration::from_secs(3600), |(at, _)| *at);
        at.into()
    }

    /// Takes what the socket holds, up to `MOST_BATCHES_PER_TURN` batches; whether that emptied
    /// it. An error here is the socket's end (a closed or invalid descriptor); what a
    /// publisher's network can cause (an ICMP error for an earlier send, reported on a read) is
    /// not.
    fn read(&mut self, receiver: &mut BatchReceiver) -> std::io::Result<bool> {
        use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, HostUnreachable, Interrupted, NetworkUnreachable, WouldBlock};
        for _ in 0..MOST_BATCHES_PER_TURN {
            match self.socket.try_io(Interest::READABLE, || receiver.fill(&self.socket)) {
                Ok(taken) => {
                    self.datagrams.inc_by(taken as u64);
                    for (datagram, from, arrived) in receiver.datagrams() {
                        self.datagram(datagram, from, arrived);
                    }
                }
                Err(e) if e.kind() == WouldBlock => return Ok(true),
                Err(e) if matches!(e.kind(), ConnectionRefused | ConnectionReset | HostUnreachable | NetworkUnreachable | Interrupted) => {
                    tracing::trace!(error = %e, "media socket read");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    async fn run(mut self, mut receiver: BatchReceiver) {
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        loop {
            timer.as_mut().reset(self.next_deadline());
            let mut more_waiting = false;
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return, // the relay is gone
                },
                readable = self.socket.readable() => match readable.and_then(|()| self.read(&mut receiver)) {
                    Ok(emptied) => more_waiting = !emptied,
                    Err(e) => {
                        tracing::error!(error = %e, "media socket failed");
                        return;
                    }
                },
                () = &mut timer => self.timeouts(),
            }
            self.settle();
            if more_waiting {
                // A flood: the sessions and their sinks take their turn before the next batches.
                tokio::task::yield_now().await;
            }
        }
    }
}

/// The media thread's loop, run on its own single-threaded runtime.
pub async fn run(socket: std::net::UdpSocket, local: SocketAddr, commands: mpsc::UnboundedReceiver<Command>, datagrams: Counter) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the media socket");
            return;
        }
    };
    let receiver = match BatchReceiver::new(&socket) {
        Ok(receiver) => receiver,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up reading the media socket");
            return;
        }
    };
    let media = MediaLoop {
        commands,
        socket,
        local,
        peers: FastMap::default(),
        routes: Routes::default(),
        timers: BTreeSet::new(),
        touched: Vec::new(),
        datagrams,
    };
    media.run(receiver).await;
}
