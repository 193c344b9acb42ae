//! The RTMP client session (the patched `rml_rtmp`) fed arbitrary server bytes, split at
//! arbitrary points, after a connect and a publish request: errors are fine, panics are not.
#![no_main]

use rml_rtmp::sessions::{ClientSession, ClientSessionConfig, PublishRequestType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, Vec<u16>)| {
    let (bytes, cuts) = input;
    let Ok((mut session, _)) = ClientSession::new(ClientSessionConfig::new()) else { return };
    let _ = session.request_connection("app".to_owned());
    let _ = session.request_publishing("key".to_owned(), PublishRequestType::Live);
    let mut rest = &bytes[..];
    for cut in cuts {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at((cut as usize).min(rest.len()));
        if session.handle_input(now).is_err() {
            return;
        }
        rest = later;
    }
    let _ = session.handle_input(rest);
});
