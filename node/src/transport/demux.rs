//! Which peer connection a datagram on the shared UDP socket belongs to. A publisher's first
//! datagram is usually an ICE connectivity check whose STUN USERNAME begins with the ufrag of
//! the answer we gave it, or the response to one of our checks, sent to an address the
//! connection chose; from then on the source address says whose it is. Checks are authenticated
//! by the peer connection, not here, so what a stranger's datagram can do is bounded: it reaches
//! one connection, which refuses it, and it pins at most `MAX_ADDRESSES_PER_PEER` addresses.

use std::collections::HashMap;
use std::net::SocketAddr;

use foldhash::HashMap as FastMap;

/// Addresses one connection may be reached from: the offer's candidates it checks (at most
/// `ice::MAX_REMOTE_CANDIDATES`) and the few the publisher's own checks come from.
pub const MAX_ADDRESSES_PER_PEER: usize = crate::ice::MAX_REMOTE_CANDIDATES + 8;

/// A peer connection's number on the media thread.
pub type PeerId = u64;

#[derive(Debug, Default)]
pub struct Routes {
    /// Looked up for every datagram. An address gets in only with a connection's ufrag or by
    /// its own send, at most `MAX_ADDRESSES_PER_PEER` a connection, so strangers cannot fill it.
    by_address: FastMap<SocketAddr, PeerId>,
    by_ufrag: HashMap<String, PeerId>,
    addresses: FastMap<PeerId, Vec<SocketAddr>>,
}

impl Routes {
    /// Expects checks for `ufrag` to go to `peer` (and only there: a peer added again starts
    /// afresh).
    pub fn add(&mut self, peer: PeerId, ufrag: String) {
        self.remove(peer);
        self.by_ufrag.insert(ufrag, peer);
        self.addresses.insert(peer, Vec::new());
    }

    /// Forgets `peer` and every address that led to it.
    pub fn remove(&mut self, peer: PeerId) {
        self.by_ufrag.retain(|_, p| *p != peer);
        for address in self.addresses.remove(&peer).unwrap_or_default() {
            self.by_address.remove(&address);
        }
    }

    /// The peer `datagram` from `from` is for, if any: by address, or by the USERNAME of a
    /// check from an address not seen yet (which then leads to that peer).
    pub fn route(&mut self, datagram: &[u8], from: SocketAddr) -> Option<PeerId> {
        if let Some(peer) = self.by_address.get(&from) {
            return Some(*peer);
        }
        let ufrag = stun_username(datagram)?.split(':').next()?;
        let peer = *self.by_ufrag.get(ufrag)?;
        self.learn(peer, from);
        Some(peer)
    }

    /// Lets datagrams from `address` lead to `peer`: it sent there (a check of its own, whose
    /// response comes back from there). An address another connection holds stays with it.
    pub fn learn(&mut self, peer: PeerId, address: SocketAddr) {
        let Some(addresses) = self.addresses.get_mut(&peer) else { return };
        if addresses.len() < MAX_ADDRESSES_PER_PEER && !self.by_address.contains_key(&address) {
            addresses.push(address);
            self.by_address.insert(address, peer);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.by_address.is_empty() && self.by_ufrag.is_empty() && self.addresses.is_empty()
    }
}

/// The USERNAME attribute of a STUN message ("ours:theirs" in a check sent to us), if `datagram`
/// is a STUN message that has one (RFC 8489 §5, §14.3).
fn stun_username(datagram: &[u8]) -> Option<&str> {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    const USERNAME: u16 = 0x0006;
    const HEADER: usize = 20;
    // A STUN message's first byte is 0-3; DTLS's is 20-63 and RTP's 128-191 (RFC 7983).
    if datagram.len() < HEADER || datagram[0] > 3 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let mut rest = &datagram[HEADER..];
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == USERNAME {
            return std::str::from_utf8(value).ok();
        }
        rest = rest.get((4 + len).next_multiple_of(4)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request carrying `username` after another attribute (padding included).
    fn check(username: &str) -> Vec<u8> {
        let mut attributes = Vec::new();
        attributes.extend_from_slice(&[0x80, 0x22, 0x00, 0x03, b'a', b'b', b'c', 0]); // SOFTWARE, padded
        attributes.extend_from_slice(&0x0006u16.to_be_bytes());
        attributes.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attributes.extend_from_slice(username.as_bytes());
        attributes.resize(attributes.len().next_multiple_of(4), 0);
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        message.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        message.extend_from_slice(&[7; 12]);
        message.extend_from_slice(&attributes);
        message
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_check_finds_its_peer_by_ufrag_and_its_address_leads_there_after() {
        let mut routes = Routes::default();
        routes.add(1, "aaaa".into());
        routes.add(2, "bbbb".into());
        assert_eq!(routes.route(&check("bbbb:remote"), addr(5000)), Some(2));
        assert_eq!(routes.route(b"\x80\x60 an RTP packet", addr(5000)), Some(2), "known address");
        assert_eq!(routes.route(b"\x80\x60 an RTP packet", addr(5001)), None, "unknown address, not STUN");
        assert_eq!(routes.route(&check("cccc:remote"), addr(5002)), None, "nobody's ufrag");
        routes.remove(2);
        assert_eq!(routes.route(b"\x80\x60 an RTP packet", addr(5000)), None);
        routes.remove(1);
        assert!(routes.is_empty());
    }

    #[test]
    fn the_answer_to_our_own_check_finds_the_peer_that_sent_it() {
        let mut routes = Routes::default();
        routes.add(1, "aaaa".into());
        routes.add(2, "bbbb".into());
        routes.learn(1, addr(7000));
        routes.learn(2, addr(7000)); // held by 1 already
        assert_eq!(routes.route(b"\x01\x01 a binding success response", addr(7000)), Some(1));
        routes.remove(1);
        assert_eq!(routes.route(b"\x01\x01 a binding success response", addr(7000)), None);
    }

    #[test]
    fn a_stranger_pins_at_most_a_few_addresses_on_a_peer() {
        let mut routes = Routes::default();
        routes.add(1, "aaaa".into());
        for port in 0..100 {
            assert_eq!(routes.route(&check("aaaa:x"), addr(6000 + port)), Some(1));
        }
        assert_eq!(routes.by_address.len(), MAX_ADDRESSES_PER_PEER);
    }

    #[test]
    fn truncated_or_foreign_datagrams_name_no_user() {
        let full = check("aaaa:remote");
        // Cut anywhere before the username's last byte (the one byte after it is padding).
        for len in 0..full.len() - 1 {
            assert_eq!(stun_username(&full[..len]), None, "{len} bytes");
        }
        assert_eq!(stun_username(&full), Some("aaaa:remote"));
        let mut dtls = full.clone();
        dtls[0] = 0x16;
        assert_eq!(stun_username(&dtls), None);
    }
}
