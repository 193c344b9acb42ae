//! The web app's files, built into whatever serves them (the relay, the front door Lambda): one
//! copy of the page, and no files to deploy beside either binary.

/// One file of the app.
#[derive(Debug, Clone, Copy)]
pub struct File {
    /// Where it is served, from the site's root.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

pub const FILES: &[File] = &[
    File { path: "/", content_type: "text/html; charset=utf-8", body: include_bytes!("../index.html") },
    File { path: "/app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../app.js") },
    File { path: "/whip.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../whip.js") },
    File { path: "/studio.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../studio.js") },
    File { path: "/style.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../style.css") },
    File {
        path: "/vendor/hls.light.min.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../vendor/hls.light.min.mjs"),
    },
];

/// The file served at `path`, if any (`/index.html` is `/`).
pub fn file(path: &str) -> Option<&'static File> {
    let path = if path == "/index.html" { "/" } else { path };
    FILES.iter().find(|f| f.path == path)
}

/// How every file is cached: revalidated each time, so a deploy is seen at once.
pub const CACHE_CONTROL: &str = "no-cache";

/// The headers the page is served with, wherever it is served from: its content security
/// policy (everything from its own origin; HLS playback and its media from HTTPS (IVS playback
/// URLs), from the origin of `playback_url` whatever its scheme, and `blob:` for Media Source
/// Extensions) and the usual protections.
pub fn page_headers(playback_url: Option<&str>) -> Vec<(&'static str, String)> {
    vec![
        ("content-security-policy", content_security_policy(playback_url)),
        ("x-content-type-options", "nosniff".to_owned()),
        ("x-frame-options", "DENY".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
    ]
}

fn content_security_policy(playback_url: Option<&str>) -> String {
    let playback = playback_url
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|origin| origin != "null" && origin.bytes().all(|b| b.is_ascii_graphic()))
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob: https:{playback}; connect-src 'self' https:{playback}; worker-src 'self' blob:; \
         object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_lets_the_page_play_from_the_configured_origin_only() {
        let policy = content_security_policy(Some("http://127.0.0.1:8081/live/x.m3u8"));
        assert!(policy.contains("connect-src 'self' https: http://127.0.0.1:8081;"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!content_security_policy(Some("not a url; script-src *")).contains('*'));
    }

    #[test]
    fn every_file_is_found_at_its_path() {
        for served in FILES {
            assert_eq!(file(served.path).map(|f| f.path), Some(served.path));
        }
        assert_eq!(file("/index.html").map(|f| f.path), Some("/"));
        assert!(file("/../Cargo.toml").is_none());
    }
}
