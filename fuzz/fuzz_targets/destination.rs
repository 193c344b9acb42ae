//! Destination URLs and templates, and the address rule for what they resolve to.
#![no_main]

use std::net::{IpAddr, Ipv6Addr};

use ivs_relay::destination::Destination;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, [u8; 16])| {
    let (url, stream, ip) = input;
    if let Ok(Destination::Rtmp(target)) = Destination::parse(url, stream, jiff::Timestamp::UNIX_EPOCH) {
        // What logs and status see: the ingest without its key.
        let shown = Destination::Rtmp(target.clone()).to_string();
        assert_eq!(shown, format!("{}/***", target.tc_url()));
    }
    let v6 = Ipv6Addr::from(ip);
    let global = ivs_relay::address::is_global(IpAddr::V6(v6));
    if let Some(v4) = v6.to_ipv4_mapped() {
        assert_eq!(global, ivs_relay::address::is_global(IpAddr::V4(v4)));
    }
});
