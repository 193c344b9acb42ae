//! The session URL the front door hands out: `/whip/{stream}/{relay}.{session}`. `relay` names
//! the task without saying anything about it (a keyed-less digest of its task ARN: neither the
//! ARN nor the address can be read back or guessed from it), `session` is the relay's own
//! unguessable session id.

use sha2::{Digest, Sha256};

/// The relay part of a session URL for the task `task_arn`.
pub fn relay_tag(task_arn: &str) -> String {
    let digest = Sha256::new().chain_update(b"ivs-front-door relay\0").chain_update(task_arn.as_bytes()).finalize();
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// `{relay}.{session}` split, if it has that shape.
pub fn split(resource: &str) -> Option<(&str, &str)> {
    let (relay, session) = resource.split_once('.')?;
    let hex = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (relay.len() == 24 && hex(relay) && hex(session)).then_some((relay, session))
}

/// The relay's `Location` (`/whip/{stream}/{session}`) as the front door's.
pub fn rewrite(relay_location: &str, tag: &str) -> Option<String> {
    let (prefix, session) = relay_location.rsplit_once('/')?;
    prefix.starts_with("/whip/").then(|| format!("{prefix}/{tag}.{session}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_distinct_and_reveal_nothing() {
        let a = "arn:aws:ecs:us-east-1:123456789012:task/ivs/0123456789abcdef0123456789abcdef";
        let b = "arn:aws:ecs:us-east-1:123456789012:task/ivs/fedcba9876543210fedcba9876543210";
        assert_eq!(relay_tag(a), relay_tag(a));
        assert_ne!(relay_tag(a), relay_tag(b));
        assert_eq!(relay_tag(a).len(), 24);
        assert!(!relay_tag(a).contains("0123456789abcdef"));
    }

    #[test]
    fn the_location_names_relay_and_session_and_nothing_else_parses() {
        let tag = relay_tag("arn:task");
        let location = rewrite("/whip/cam1/5f3c0d7e2b", &tag).expect("rewritten");
        assert_eq!(location, format!("/whip/cam1/{tag}.5f3c0d7e2b"));
        let resource = location.rsplit('/').next().expect("last segment");
        assert_eq!(split(resource), Some((tag.as_str(), "5f3c0d7e2b")));
        for bad in ["5f3c0d7e2b", ".5f3c", "zz.11", &format!("{tag}."), &format!("{tag}.x/../y"), &format!("a{tag}.12")] {
            assert_eq!(split(bad), None, "{bad}");
        }
        assert_eq!(rewrite("https://elsewhere/x", &tag), None);
    }
}
