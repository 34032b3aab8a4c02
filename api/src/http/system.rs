//! Health, readiness, metrics, baseline, stats, dead letters, the OpenAPI document,
//! and request counting.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Params, blocking};
use crate::ApiError;
use crate::backend::{RecentCalls, Stats};
use crate::metrics;
use crate::state::ApiState;
use eastwest_model::BaselineStatus;

pub const OPENAPI_DOCUMENT: &str = include_str!("../../openapi.json");
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(state): State<ApiState>) -> Response {
    let backend = state.inner.backend.clone();
    let ready = tokio::time::timeout(READY_TIMEOUT, blocking(move || backend.ready())).await;
    match ready {
        Ok(Ok(true)) => Json(json!({ "status": "ready" })).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready" })),
        )
            .into_response(),
    }
}

pub(crate) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let outbox = state.inner.store.run(|s| s.outbox_counts()).await?;
    let backend = state.inner.backend.clone();
    let api = state.inner.metrics.clone();
    let max_edges = state.inner.config.metrics_max_edges;
    let text = blocking(move || {
        let registry = metrics::registry(backend.as_ref(), &api, outbox, max_edges);
        metrics::encode(&registry)
    })
    .await?
    .map_err(|e| ApiError::Task(format!("encoding metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

pub(crate) async fn baseline(
    State(state): State<ApiState>,
) -> Result<Json<BaselineStatus>, ApiError> {
    let backend = state.inner.backend.clone();
    Ok(Json(blocking(move || backend.baseline_status()).await?))
}

pub(crate) async fn detect(
    State(state): State<ApiState>,
) -> Result<Json<BaselineStatus>, ApiError> {
    let backend = state.inner.backend.clone();
    Ok(Json(blocking(move || backend.end_learning()).await?))
}

pub(crate) async fn stats(State(state): State<ApiState>) -> Result<Json<Stats>, ApiError> {
    let backend = state.inner.backend.clone();
    Ok(Json(blocking(move || backend.stats()).await?))
}

pub(crate) async fn recent_calls(
    State(state): State<ApiState>,
    query: Result<axum::extract::Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<RecentCalls>, ApiError> {
    let limit = Params::parse(query, &["limit"])?.limit(100, 1000)?;
    let backend = state.inner.backend.clone();
    let calls = blocking(move || backend.recent_calls(limit)).await?;
    Ok(Json(RecentCalls { calls }))
}

pub(crate) async fn dead_letters(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let limit = Params::parse(query, &["limit"])?.limit(100, 1000)?;
    let rows = state
        .inner
        .store
        .run(move |s| s.dead_letters(limit))
        .await?;
    Ok(Json(json!({ "dead_letters": rows })))
}

pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI_DOCUMENT,
    )
        .into_response()
}

/// Counts requests by method, route template and status (bounded label values).
pub(crate) async fn count_requests(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m.to_string(),
        _ => "other".to_string(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state
        .inner
        .metrics
        .count_http(&method, &route, response.status().as_u16());
    response
}
