//! `GET /api/v1/posture` and `GET /api/v1/report`.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::blocking;
use crate::ApiError;
use crate::state::ApiState;

/// The posture's default period: the raw history's default retention.
const DEFAULT_POSTURE_SINCE: Duration = Duration::from_secs(7 * 86_400);
const DEFAULT_REPORT_SINCE: Duration = Duration::from_secs(30 * 86_400);
/// Longest period a request may ask for: the roll-ups' default retention.
const MAX_SINCE: Duration = Duration::from_secs(400 * 86_400);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvidenceQuery {
    since: Option<String>,
    format: Option<String>,
}

fn since(q: &EvidenceQuery, default: Duration) -> Result<Duration, ApiError> {
    let Some(text) = q.since.as_deref() else {
        return Ok(default);
    };
    let d = humantime::parse_duration(text)
        .map_err(|e| ApiError::BadRequest(format!("since={text:?}: {e} (e.g. 7d, 30d)")))?;
    if d.is_zero() || d > MAX_SINCE {
        return Err(ApiError::BadRequest(format!(
            "since must be between 1s and {}",
            humantime::format_duration(MAX_SINCE)
        )));
    }
    Ok(d)
}

fn evidence(state: &ApiState) -> Result<std::sync::Arc<dyn crate::Evidence>, ApiError> {
    state.inner.evidence.get().cloned().ok_or_else(|| {
        ApiError::NotFound("posture and reports are not served by this process".into())
    })
}

fn respond(r: crate::Rendered) -> Response {
    ([(header::CONTENT_TYPE, r.content_type)], r.body).into_response()
}

pub(crate) async fn posture(
    State(state): State<ApiState>,
    Query(q): Query<EvidenceQuery>,
) -> Result<Response, ApiError> {
    if q.format.as_deref().is_some_and(|f| f != "json") {
        return Err(ApiError::BadRequest(
            "posture is served as json only".into(),
        ));
    }
    let since = since(&q, DEFAULT_POSTURE_SINCE)?;
    let e = evidence(&state)?;
    Ok(respond(blocking(move || e.posture(since)).await??))
}

pub(crate) async fn report(
    State(state): State<ApiState>,
    Query(q): Query<EvidenceQuery>,
) -> Result<Response, ApiError> {
    let since = since(&q, DEFAULT_REPORT_SINCE)?;
    let format = q.format.clone().unwrap_or_else(|| "json".into());
    if !["json", "csv", "html"].contains(&format.as_str()) {
        return Err(ApiError::BadRequest(
            "format must be json, csv or html".into(),
        ));
    }
    let e = evidence(&state)?;
    Ok(respond(blocking(move || e.report(since, &format)).await??))
}
