//! The web app (`ivs-web`), served from the binary.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ivs_web::FILES.iter().fold(Router::new(), |router, file| router.route(file.path, get(move || async move { serve(file) })))
}

fn serve(file: &'static ivs_web::File) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, file.content_type), (header::CACHE_CONTROL, ivs_web::CACHE_CONTROL)], file.body)
        .into_response()
}
