//! Bearer-token check for `/api/v1/*` and `/metrics`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::ApiError;
use crate::metrics::Refusal;
use crate::state::{ApiState, digest};

/// Passes the request on when no token is configured or the right one is presented as
/// `Authorization: Bearer …` (or, for the SSE stream only, since browsers' EventSource
/// cannot set headers, as `?access_token=…`).
pub(crate) async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.inner.token_digest else {
        return next.run(request).await;
    };
    let provided = bearer(&request).or_else(|| {
        if request.uri().path().ends_with("/alerts/stream") {
            query_token(request.uri().query().unwrap_or(""))
        } else {
            None
        }
    });
    if matches(provided.as_deref(), &expected) {
        next.run(request).await
    } else {
        refuse(&state)
    }
}

/// `/metrics` lists every learned edge, so it needs the token too (header only: scrapers
/// send `Authorization`), unless the operator opened it with `[api] metrics_public`.
pub(crate) async fn require_metrics_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.inner.token_digest else {
        return next.run(request).await;
    };
    if state.inner.config.metrics_public || matches(bearer(&request).as_deref(), &expected) {
        next.run(request).await
    } else {
        refuse(&state)
    }
}

fn bearer(request: &Request) -> Option<String> {
    request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
}

/// Comparing digests keeps the comparison constant-time and length-independent.
fn matches(provided: Option<&str>, expected: &[u8; 32]) -> bool {
    provided.is_some_and(|token| bool::from(digest(token).ct_eq(expected)))
}

fn refuse(state: &ApiState) -> Response {
    state.inner.metrics.count_refusal(Refusal::Token);
    ApiError::Unauthorized.into_response()
}

fn query_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "access_token").then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn access_token_is_read_and_decoded() {
        assert_eq!(
            query_token("a=1&access_token=t%2Bk+x").as_deref(),
            Some("t+k x")
        );
        assert_eq!(query_token("a=1"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    proptest! {
        #[test]
        fn percent_decode_never_panics(s in ".{0,30}") {
            let _ = percent_decode(&s);
        }
    }
}
