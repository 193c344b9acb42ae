//! The relay's public address, asked of STUN servers (for --stun): what browsers must be told to
//! send their media to when the relay sits behind 1:1 NAT with no --public-ip.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;

use crate::dns::Dns;

/// How many times the whole list of STUN servers is tried before the relay gives up starting:
/// without its public address no browser can reach it.
const STUN_ROUNDS: u32 = 3;

/// Asks the STUN servers, in turn, which address our UDP traffic comes from (for --stun); one
/// server down (or blocked) only costs the time to try the next.
pub async fn discover_public_ip(dns: &Dns, servers: &[String]) -> anyhow::Result<IpAddr> {
    let mut failures = Vec::new();
    for round in 1..=STUN_ROUNDS {
        for server in servers {
            match ask_stun(dns, server).await {
                Ok(ip) => {
                    tracing::info!(%ip, server, "public address discovered by STUN");
                    return Ok(ip);
                }
                Err(e) => {
                    tracing::warn!(server, round, error = format!("{e:#}"), "STUN server failed; trying the next");
                    failures.push(format!("{e:#}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(u64::from(round))).await;
    }
    failures.dedup();
    anyhow::bail!("no STUN server told the public address after {STUN_ROUNDS} rounds: {}", failures.join("; "))
}

/// One STUN binding request, sent up to three times.
async fn ask_stun(dns: &Dns, stun_server: &str) -> anyhow::Result<IpAddr> {
    use rtc::stun::message::{BINDING_REQUEST, Getter, Message, TransactionId};
    use rtc::stun::xoraddr::XorMappedAddress;

    let (host, port) = stun_server.rsplit_once(':').with_context(|| format!("STUN server {stun_server:?} is not HOST:PORT"))?;
    let port = port.parse().with_context(|| format!("STUN server {stun_server:?} has no valid port"))?;
    let server = dns
        .resolve(host, port)
        .await
        .with_context(|| format!("cannot resolve STUN server {stun_server}"))?
        .into_iter()
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("STUN server {stun_server} has no IPv4 address"))?;
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
    let mut request = Message::new();
    request.build(&[Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)])?;
    let mut buf = vec![0u8; 1500];
    for _attempt in 0..3 {
        socket.send_to(&request.raw, server).await?;
        let Ok(received) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await else { continue };
        let (n, _) = received?;
        let mut response = Message::new();
        response.raw = buf[..n].to_vec();
        response.decode()?;
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&response)?;
        return Ok(mapped.ip);
    }
    anyhow::bail!("STUN server {stun_server} did not answer in 6 s")
}
