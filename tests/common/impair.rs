//! A UDP forwarder on loopback that impairs the publisher → relay direction: it drops a share
//! of the RTP/RTCP packets and holds back others (so they arrive late and out of order), as a
//! poor network would. STUN and DTLS pass untouched, so that only media suffers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;

#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Of every 100 media packets, this many are dropped…
    pub drop_percent: u64,
    /// …and this many delayed by `delay`.
    pub delay_percent: u64,
    pub delay: Duration,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub delayed: AtomicU64,
}

pub struct Forwarder {
    /// Where the publisher sends.
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// RTP and RTCP start with version 2 (RFC 7983 demultiplexing: first byte 128..=191).
fn is_media(packet: &[u8]) -> bool {
    packet.first().is_some_and(|b| (128..=191).contains(b))
}

impl Forwarder {
    pub async fn start(relay: SocketAddr, impairment: Impairment) -> Forwarder {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let addr = front.local_addr().expect("addr");
        let counts = Arc::new(Counts::default());
        let publisher = Arc::new(tokio::sync::Mutex::new(None::<SocketAddr>));

        let (f, b, c, p) = (front.clone(), back.clone(), counts.clone(), publisher.clone());
        let upstream = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            // A fixed linear congruential sequence: the same impairment on every run.
            let mut state = 0x2545_f491_4f6c_dd1du64;
            while let Ok((n, from)) = f.recv_from(&mut buf).await {
                *p.lock().await = Some(from);
                let packet = buf[..n].to_vec();
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let roll = (state >> 33) % 100;
                if is_media(&packet) && roll < impairment.drop_percent {
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                c.forwarded.fetch_add(1, Ordering::Relaxed);
                if is_media(&packet) && roll < impairment.drop_percent + impairment.delay_percent {
                    c.delayed.fetch_add(1, Ordering::Relaxed);
                    let b = b.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(impairment.delay).await;
                        let _ = b.send_to(&packet, relay).await;
                    });
                } else {
                    let _ = b.send_to(&packet, relay).await;
                }
            }
        });
        let downstream = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, _)) = back.recv_from(&mut buf).await {
                if let Some(to) = *publisher.lock().await {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
        Forwarder { addr, counts, tasks: vec![upstream, downstream] }
    }
}
