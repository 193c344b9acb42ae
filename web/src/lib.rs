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
