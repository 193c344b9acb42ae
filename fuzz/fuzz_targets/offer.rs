//! The WHIP offer surface: SDP parsing and checks, and the ICE candidate filter.
#![no_main]

use ivs_relay::address::{AddressPolicy, Restrictions};
use ivs_relay::ice::{MAX_REMOTE_CANDIDATES, filter_offer_candidates};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|sdp: &str| {
    let _ = ivs_relay::offer::check(sdp);
    let policy = AddressPolicy::Restricted(std::sync::Arc::new(Restrictions::default()));
    let (filtered, count) = filter_offer_candidates(sdp, &policy);
    assert!(count.kept <= MAX_REMOTE_CANDIDATES);
    assert!(filtered.len() <= sdp.len());
});
