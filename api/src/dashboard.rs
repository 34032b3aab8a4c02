//! Placeholder until the dashboard engineer provides the embedded `web/dist` router.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

pub fn router() -> Router {
    Router::new().route(
        "/",
        get(|| async {
            Html("<!doctype html><title>eastwest</title><p>The eastwest dashboard is not built. The API is at <code>/api/v1/</code>.</p>")
        }),
    )
}
