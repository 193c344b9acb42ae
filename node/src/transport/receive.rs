//! Reading the media socket in batches (`recvmmsg`), each datagram with the time the kernel took
//! it in (`SO_TIMESTAMPNS`). The media thread may let datagrams wait on the socket before it
//! reads them (`moderation`), so the time of the read is not when a datagram arrived: the
//! kernel's time is what congestion control feedback (TWCC) reports to the publisher and where
//! the relay's latency histogram starts.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;

/// Datagrams taken by one system call.
const BATCH: usize = 32;

/// Larger than any datagram a publisher sends (its MTU is ~1200-1500 bytes).
const DATAGRAM: usize = 2048;

/// A kernel timestamp further back than this is not believed (the wall clock stepped between the
/// datagram's arrival and its read): the read's own time stands in.
const MOST_BELIEVED_AGE: Duration = Duration::from_secs(1);

/// One datagram of the last batch: where its bytes are, who sent it, when it arrived.
#[derive(Debug, Clone, Copy)]
struct Received {
    slot: usize,
    len: usize,
    from: SocketAddr,
    arrived: Instant,
}

pub struct BatchReceiver {
    buffers: Vec<u8>,
    headers: MultiHeaders<SockaddrStorage>,
    batch: Vec<Received>,
}

impl BatchReceiver {
    /// Asks the kernel to stamp the datagrams of `socket`.
    pub fn new(socket: &impl AsFd) -> std::io::Result<Self> {
        setsockopt(socket, sockopt::ReceiveTimestampns, &true)?;
        Ok(Self {
            buffers: vec![0; BATCH * DATAGRAM],
            headers: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec))),
            batch: Vec::with_capacity(BATCH),
        })
    }

    /// Takes up to `BATCH` datagrams waiting on `socket` without blocking; `WouldBlock` when
    /// there are none. Returns how many it took (a datagram whose sender is not an IP address
    /// is taken but not kept).
    pub fn fill(&mut self, socket: &impl AsRawFd) -> std::io::Result<usize> {
        self.batch.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self.buffers.chunks_mut(DATAGRAM).map(|b| [IoSliceMut::new(b)]).collect();
        let received = recvmmsg(socket.as_raw_fd(), &mut self.headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
        let clocks = Clocks::now();
        let mut taken = 0;
        for (slot, message) in received.enumerate() {
            taken += 1;
            let Some(from) = message.address.as_ref().and_then(socket_addr) else { continue };
            let stamped = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestampns(at) => Some(at),
                    _ => None,
                })
            });
            let arrived = stamped.map_or(clocks.instant, |at| clocks.arrival(at));
            self.batch.push(Received { slot, len: message.bytes.min(DATAGRAM), from, arrived });
        }
        Ok(taken)
    }

    /// The datagrams of the last `fill`, in the order they arrived.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr, Instant)> {
        self.batch.iter().map(|r| (&self.buffers[r.slot * DATAGRAM..][..r.len], r.from, r.arrived))
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// The monotonic and the wall clock read together: the kernel stamps datagrams on the wall clock.
struct Clocks {
    instant: Instant,
    wall: SystemTime,
}

impl Clocks {
    fn now() -> Self {
        Self { instant: Instant::now(), wall: SystemTime::now() }
    }

    fn arrival(&self, at: TimeSpec) -> Instant {
        let at = SystemTime::UNIX_EPOCH + Duration::from(at);
        match self.wall.duration_since(at) {
            Ok(age) if age <= MOST_BELIEVED_AGE => self.instant.checked_sub(age).unwrap_or(self.instant),
            _ => self.instant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Sends one datagram and reads it back 10 ms later: how long before the read it arrived.
    fn probe(receiver: &mut BatchReceiver, socket: &UdpSocket, sender: &UdpSocket) -> Duration {
        sender.send_to(b"probe", socket.local_addr().expect("addr")).expect("send");
        std::thread::sleep(Duration::from_millis(10));
        receiver.fill(socket).expect("the probe");
        let (_, _, arrived) = receiver.datagrams().next().expect("the probe");
        arrived.elapsed()
    }

    #[test]
    fn datagrams_come_with_their_sender_and_an_arrival_before_the_read() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("non-blocking");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut receiver = BatchReceiver::new(&socket).expect("receiver");
        let empty = receiver.fill(&socket).expect_err("nothing was sent");
        assert_eq!(empty.kind(), std::io::ErrorKind::WouldBlock);
        // Linux turns receive timestamps on for the first socket that asks in a work queue, a
        // moment later; until then it stamps a datagram when it is read.
        let on = (0..200).any(|_| probe(&mut receiver, &socket, &sender) >= Duration::from_millis(5));
        assert!(on, "the kernel never stamped a datagram on its arrival");

        let sent = Instant::now();
        for n in 0..40u8 {
            sender.send_to(&[n; 100], socket.local_addr().expect("addr")).expect("send");
        }
        std::thread::sleep(Duration::from_millis(20));
        let read = Instant::now();
        let mut got = Vec::new();
        while let Ok(taken) = receiver.fill(&socket) {
            assert!(taken <= BATCH);
            got.extend(receiver.datagrams().map(|(data, from, at)| (data.to_vec(), from, at)));
        }
        assert_eq!(got.len(), 40, "two batches, nothing lost");
        for (n, (data, from, at)) in got.iter().enumerate() {
            assert_eq!((data.len(), data[0]), (100, n as u8));
            assert_eq!(*from, sender.local_addr().expect("addr"));
            assert!(
                *at >= sent - Duration::from_millis(1) && *at + Duration::from_millis(15) < read,
                "stamped with its arrival, not its read: {:?} after sending, {:?} before the read",
                at.saturating_duration_since(sent),
                read.saturating_duration_since(*at)
            );
        }
    }
}
