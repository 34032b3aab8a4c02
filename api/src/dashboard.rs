//! Serves the dashboard embedded from `web/dist` at build time (see `build.rs`).
//! Unknown non-API paths get `index.html` so hash/deep links work; hashed assets
//! are cached forever, everything else is revalidated.

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

/// The dashboard's Content-Security-Policy: no inline scripts, nothing external.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'";

/// The router G merges as the API's fallback for `/`.
pub fn router() -> Router {
    Router::new().fallback(serve_asset)
}

fn find(path: &str) -> Option<(&'static str, &'static [u8])> {
    DASHBOARD_ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, ct, bytes)| (*ct, *bytes))
}

async fn serve_asset(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"not found"}"#,
        )
            .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let (content_type, bytes, cache) = match find(path) {
        Some((ct, bytes)) if path.starts_with("/assets/") => {
            (ct, bytes, "public, max-age=31536000, immutable")
        }
        Some((ct, bytes)) if path != "/" => (ct, bytes, "no-cache"),
        _ => match find("/index.html") {
            Some((ct, bytes)) => (ct, bytes, "no-cache"),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    "the eastwest dashboard was not built into this binary; the API is at /api/v1/",
                )
                    .into_response();
            }
        },
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        router()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn root_and_deep_links_serve_index_with_csp() {
        if find("/index.html").is_none() {
            return; // built with EASTWEST_SKIP_WEB_BUILD and no dist
        }
        for path in ["/", "/alerts/abc", "/index.html"] {
            let response = get(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
        }
    }

    #[tokio::test]
    async fn assets_are_typed_and_cached_and_api_paths_are_not_swallowed() {
        for (path, ct, _) in DASHBOARD_ASSETS
            .iter()
            .filter(|(p, _, _)| p.starts_with("/assets/"))
        {
            let response = get(path).await;
            assert_eq!(response.headers()[header::CONTENT_TYPE], *ct);
            assert!(
                response.headers()[header::CACHE_CONTROL]
                    .to_str()
                    .unwrap()
                    .contains("immutable")
            );
        }
        assert_eq!(get("/api/v1/nope").await.status(), StatusCode::NOT_FOUND);
    }
}
