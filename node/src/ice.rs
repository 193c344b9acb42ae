//! Which of an offer's ICE candidates the relay may send connectivity checks to. An offer is
//! anyone's text: without a filter, its candidates make the relay send STUN to any address it
//! names (hundreds of them), inside its own network too. The relay needs none of them to
//! connect — the publisher's own checks reach it and teach it the publisher's address — so
//! candidates that are not allowed are dropped, and at most `MAX_REMOTE_CANDIDATES` kept.

use std::net::IpAddr;

use crate::address::AddressPolicy;

/// Remote candidates used per offer: a browser offers a handful per network interface.
pub const MAX_REMOTE_CANDIDATES: usize = 16;

/// How many candidates `filter_offer_candidates` kept and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CandidateCount {
    pub kept: usize,
    pub dropped: usize,
}

/// The offer with only the candidates `policy` permits, at most `MAX_REMOTE_CANDIDATES` of them.
/// Candidates naming a host rather than an address (mDNS `.local`) are dropped: the relay
/// does not resolve them.
pub fn filter_offer_candidates(sdp: &str, policy: &AddressPolicy) -> (String, CandidateCount) {
    let mut count = CandidateCount::default();
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if let Some(candidate) = line.trim_end().strip_prefix("a=candidate:") {
            let allowed = candidate_address(candidate).is_some_and(|ip| policy.permits(ip));
            if !allowed || count.kept == MAX_REMOTE_CANDIDATES {
                count.dropped += 1;
                continue;
            }
            count.kept += 1;
        }
        out.push_str(line);
    }
    (out, count)
}

/// The connection address of a candidate attribute's value (RFC 8839 §5.1:
/// `foundation component transport priority address port typ …`).
fn candidate_address(candidate: &str) -> Option<IpAddr> {
    candidate.split_ascii_whitespace().nth(4)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::address::Restrictions;

    fn offer(candidates: &[&str]) -> String {
        let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n");
        for (i, address) in candidates.iter().enumerate() {
            sdp.push_str(&format!("a=candidate:{i} 1 udp 2122260223 {address} {} typ host generation 0\r\n", 50000 + i));
        }
        sdp.push_str("a=end-of-candidates\r\n");
        sdp
    }

    fn public_only() -> AddressPolicy {
        AddressPolicy::Restricted(Arc::new(Restrictions::default()))
    }

    #[test]
    fn candidates_inside_private_networks_and_mdns_names_are_dropped() {
        let sdp = offer(&["192.168.1.20", "52.94.1.1", "10.0.0.3", "abcd-1234.local", "169.254.169.254", "2600:1f18::1", "::1"]);
        let (filtered, count) = filter_offer_candidates(&sdp, &public_only());
        assert_eq!(count, CandidateCount { kept: 2, dropped: 5 });
        assert!(filtered.contains(" 52.94.1.1 ") && filtered.contains(" 2600:1f18::1 "), "{filtered}");
        assert!(!filtered.contains("192.168.") && !filtered.contains(".local"), "{filtered}");
        assert!(filtered.ends_with("a=end-of-candidates\r\n"));
        assert!(filtered.starts_with("v=0\r\n"));
    }

    #[test]
    fn at_most_sixteen_candidates_are_kept() {
        let addresses: Vec<String> = (0..40).map(|i| format!("52.94.1.{i}")).collect();
        let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let (filtered, count) = filter_offer_candidates(&offer(&refs), &AddressPolicy::Any);
        assert_eq!(count, CandidateCount { kept: MAX_REMOTE_CANDIDATES, dropped: 24 });
        assert_eq!(filtered.matches("a=candidate:").count(), MAX_REMOTE_CANDIDATES);
    }

    #[test]
    fn the_local_relay_keeps_loopback_and_lan_candidates() {
        let (_, count) = filter_offer_candidates(&offer(&["127.0.0.1", "192.168.1.20"]), &AddressPolicy::Any);
        assert_eq!(count, CandidateCount { kept: 2, dropped: 0 });
    }

    #[test]
    fn garbage_candidate_lines_are_dropped_not_trusted() {
        let sdp = "v=0\r\na=candidate:\r\na=candidate:1 1 udp\r\na=candidate:1 1 udp 1 notanip 9 typ host\r\n";
        let (filtered, count) = filter_offer_candidates(sdp, &AddressPolicy::Any);
        assert_eq!(count.kept, 0);
        assert_eq!(filtered, "v=0\r\n");
    }
}
