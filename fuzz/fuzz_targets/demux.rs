//! The media socket's routing: arbitrary datagrams from arbitrary loopback ports, against a few
//! connections that come and go. Never panics, and a datagram only ever reaches a connection
//! that is there: removing one forgets every address that led to it.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;

use arbitrary::Arbitrary;
use ivs_relay::transport::demux::{PeerId, Routes};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Step {
    Add(u8),
    Remove(u8),
    Learn(u8, u16),
    Datagram(u16, Vec<u8>),
}

fuzz_target!(|steps: Vec<Step>| {
    let mut routes = Routes::default();
    let mut live: HashSet<PeerId> = HashSet::new();
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    for step in steps {
        match step {
            // Ufrags as the answers make them: one per connection, here its number.
            Step::Add(peer) => {
                routes.add(PeerId::from(peer), format!("u{peer}"));
                live.insert(PeerId::from(peer));
            }
            Step::Remove(peer) => {
                routes.remove(PeerId::from(peer));
                live.remove(&PeerId::from(peer));
            }
            Step::Learn(peer, port) => routes.learn(PeerId::from(peer), addr(port)),
            Step::Datagram(port, bytes) => {
                if let Some(peer) = routes.route(&bytes, addr(port)) {
                    assert!(live.contains(&peer), "connection {peer} was removed");
                }
            }
        }
    }
});
