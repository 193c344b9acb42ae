//! The web app (`web/`), built into the binary: no files to deploy beside it.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// (path, content type, bytes)
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("../../web/index.html")),
    ("/app.js", "text/javascript; charset=utf-8", include_bytes!("../../web/app.js")),
    ("/whip.js", "text/javascript; charset=utf-8", include_bytes!("../../web/whip.js")),
    ("/style.css", "text/css; charset=utf-8", include_bytes!("../../web/style.css")),
    ("/vendor/hls.light.min.mjs", "text/javascript; charset=utf-8", include_bytes!("../../web/vendor/hls.light.min.mjs")),
];

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    FILES.iter().fold(Router::new(), |router, &(path, content_type, body)| {
        router.route(path, get(move || async move { serve(content_type, body) }))
    })
}

fn serve(content_type: &'static str, body: &'static [u8]) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}
