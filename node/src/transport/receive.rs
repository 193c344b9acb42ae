//! Reading the media socket in batches (`recvmmsg`), each datagram with the time the kernel took
//! it in (`SO_TIMESTAMPNS`). The media loop reads on a clock, so the time of the read is not
//! when a datagram arrived: the kernel's time is what congestion control feedback (TWCC) reports
//! and where the relay's latency starts.

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;

/// Datagrams taken by one system call.
const BATCH: usize = 32;

/// Larger than any datagram a publisher sends (its MTU is ~1200-1500 bytes).
const DATAGRAM: usize = 2048;

/// A kernel timestamp further back than this is not believed (a clock step between the
/// datagram's arrival and its read): the read's own time stands in.
const MOST_BELIEVED_AGE: Duration = Duration::from_secs(1);

pub struct BatchReceiver {
    fd: RawFd,
    buffers: Vec<u8>,
    headers: MultiHeaders<SockaddrStorage>,
}

impl BatchReceiver {
    /// Asks the kernel to stamp `socket`'s datagrams; `socket` must outlive the receiver.
    pub fn new(socket: &UdpSocket) -> std::io::Result<Self> {
        setsockopt(&socket.as_fd(), sockopt::ReceiveTimestampns, &true)?;
        Ok(Self {
            fd: socket.as_raw_fd(),
            buffers: vec![0; BATCH * DATAGRAM],
            headers: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec))),
        })
    }

    /// Takes up to `BATCH` waiting datagrams and gives each to `each` with its sender and its
    /// arrival; returns how many there were (0: none waiting).
    pub fn receive(&mut self, mut each: impl FnMut(&[u8], SocketAddr, Instant)) -> std::io::Result<usize> {
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self.buffers.chunks_mut(DATAGRAM).map(|b| [IoSliceMut::new(b)]).collect();
        let received = match recvmmsg(self.fd, &mut self.headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None) {
            Ok(received) => received,
            Err(nix::errno::Errno::EAGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let clocks = Clocks::now();
        let mut count = 0;
        for message in received {
            count += 1;
            let Some(from) = message.address.as_ref().and_then(socket_addr) else { continue };
            let stamped = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestampns(at) => Some(at),
                    _ => None,
                })
            });
            let arrived = stamped.map_or(clocks.instant, |at| clocks.arrival(at));
            if let Some(data) = message.iovs().next() {
                each(&data[..message.bytes.min(data.len())], from, arrived);
            }
        }
        Ok(count)
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

    #[test]
    fn datagrams_come_with_their_sender_and_an_arrival_before_the_read() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut receiver = BatchReceiver::new(&socket).expect("receiver");
        assert_eq!(receiver.receive(|_, _, _| panic!("nothing was sent")).expect("empty read"), 0);
        let sent = Instant::now();
        for n in 0..40u8 {
            sender.send_to(&[n; 100], socket.local_addr().expect("addr")).expect("send");
        }
        std::thread::sleep(Duration::from_millis(20));
        let read = Instant::now();
        let mut got = Vec::new();
        while receiver.receive(|data, from, at| got.push((data.to_vec(), from, at))).expect("read") > 0 {}
        assert_eq!(got.len(), 40, "two batches, nothing lost");
        for (n, (data, from, at)) in got.iter().enumerate() {
            assert_eq!((data.len(), data[0]), (100, n as u8));
            assert_eq!(*from, sender.local_addr().expect("addr"));
            assert!(
                *at >= sent - Duration::from_millis(1) && *at < read,
                "stamped with its arrival, not its read: {:?} after sending",
                at.saturating_duration_since(sent)
            );
        }
    }
}
