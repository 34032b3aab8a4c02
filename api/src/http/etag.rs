//! JSON responses with a strong ETag, answered `304 Not Modified` when the client's
//! `If-None-Match` names it: the dashboard polls the graph every few seconds, and an
//! unchanged graph then costs a hash instead of a download and a re-layout.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ApiError;

pub(crate) fn json<T: Serialize>(request: &HeaderMap, value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value)?;
    let digest = Sha256::digest(&body);
    let tag = format!("\"{}\"", hex::encode(&digest[..16]));
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*");
    let tag = HeaderValue::from_str(&tag).expect("hex in quotes is a header value");
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, tag);
    // Revalidate every time: the graph changes with traffic.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
