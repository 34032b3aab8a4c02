//! The axum router: `/api/v1/*` (token-protected when configured), health, metrics,
//! and the dashboard as the fallback; every route behind the Host / CSRF guard.

mod alerts;
mod auth;
mod etag;
mod evidence;
mod graph;
mod guard;
mod policy;
pub(crate) mod system;
mod ui;

pub(crate) use guard::HostEntry;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router, middleware};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;

use crate::state::ApiState;
use crate::{ApiError, config, dashboard};

/// Every `/api/v1` route as (method, path relative to `/api/v1`). The router is built
/// from this table and the OpenAPI document is checked against it.
pub const API_ROUTES: &[(&str, &str)] = &[
    ("get", "/alerts"),
    ("get", "/alerts/stream"),
    ("get", "/alerts/{id}"),
    ("post", "/alerts/{id}/ack"),
    ("post", "/alerts/{id}/accept"),
    ("get", "/incidents"),
    ("get", "/incidents/{id}"),
    ("get", "/graph"),
    ("get", "/graph/namespaces"),
    ("get", "/graph/search"),
    ("get", "/graph/edge"),
    ("get", "/graph/service/{key}"),
    ("get", "/baseline"),
    ("post", "/baseline/detect"),
    ("get", "/stats"),
    ("get", "/calls/recent"),
    ("get", "/webhooks/dead-letters"),
    ("get", "/alerts/{id}/deny-rule"),
    ("get", "/policy"),
    ("post", "/policy/backtest"),
    ("post", "/policy/drift"),
    ("get", "/posture"),
    ("get", "/report"),
    ("get", "/openapi.json"),
    ("get", "/ui"),
];

/// Routes outside `/api/v1`: health and readiness are always open, `/metrics` needs the
/// token when one is set (unless `[api] metrics_public`).
pub const SYSTEM_ROUTES: &[(&str, &str)] =
    &[("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")];

fn api_handler(method: &str, path: &str) -> MethodRouter<ApiState> {
    match (method, path) {
        ("get", "/alerts") => get(alerts::list),
        ("get", "/alerts/stream") => get(alerts::stream),
        ("get", "/alerts/{id}") => get(alerts::get_one),
        ("post", "/alerts/{id}/ack") => post(alerts::ack),
        ("post", "/alerts/{id}/accept") => post(alerts::accept),
        ("get", "/incidents") => get(alerts::list_incidents),
        ("get", "/incidents/{id}") => get(alerts::get_incident),
        ("get", "/graph") => get(graph::graph),
        ("get", "/graph/namespaces") => get(graph::namespaces),
        ("get", "/graph/search") => get(graph::search),
        ("get", "/graph/edge") => get(graph::edge),
        ("get", "/graph/service/{key}") => get(graph::service),
        ("get", "/baseline") => get(system::baseline),
        ("post", "/baseline/detect") => post(system::detect),
        ("get", "/stats") => get(system::stats),
        ("get", "/calls/recent") => get(system::recent_calls),
        ("get", "/webhooks/dead-letters") => get(system::dead_letters),
        ("get", "/alerts/{id}/deny-rule") => get(policy::deny_rule),
        ("get", "/policy") => get(policy::generate),
        ("post", "/policy/backtest") => post(policy::backtest),
        ("post", "/policy/drift") => post(policy::drift),
        ("get", "/posture") => get(evidence::posture),
        ("get", "/report") => get(evidence::report),
        ("get", "/openapi.json") => get(system::openapi),
        ("get", "/ui") => get(ui::ui),
        _ => unreachable!("API_ROUTES entry without a handler: {method} {path}"),
    }
}

/// The router, guarding `Host` against the configured address. [`serve`] uses the
/// address the listener is actually bound to.
pub fn router(state: ApiState) -> Router {
    let addr = state.inner.config.addr;
    app(state, addr)
}

fn app(state: ApiState, bound: SocketAddr) -> Router {
    let guard = Arc::new(guard::Guard::new(
        &state.inner.config,
        bound,
        state.inner.metrics.clone(),
    ));
    let mut api = Router::new();
    for (method, path) in API_ROUTES {
        api = api.route(path, api_handler(method, path));
    }
    let api = api
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            system::count_requests,
        ));
    let max_body = state.inner.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route(
            "/metrics",
            get(system::metrics).route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_metrics_token,
            )),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            system::count_requests,
        ))
        .nest("/api/v1", api)
        .fallback_service(dashboard::router())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyLimitLayer::new(max_body))
        // Outside everything else: a refused request reaches no handler and reads no body.
        .layer(middleware::from_fn_with_state(guard, guard::check_request))
        .layer(middleware::from_fn(guard::security_headers))
        .with_state(state)
}

/// Serves until `cancel`, then finishes in-flight requests and ends SSE streams.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    cancel: CancellationToken,
) -> Result<(), ApiError> {
    let addr = listener.local_addr()?;
    config::check_bind(addr, &state.inner.config)?;
    let shutdown = state.inner.shutdown.clone();
    let app = app(state, addr);
    tracing::info!(%addr, "API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            cancel.cancelled().await;
            shutdown.cancel();
        })
        .await?;
    Ok(())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "API request failed");
        }
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"eastwest\""),
            );
        }
        response
    }
}

/// Query parameters with unknown names rejected, so typos are not silently ignored.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(
        query: Result<axum::extract::Query<Vec<(String, String)>>, QueryRejection>,
        allowed: &[&str],
    ) -> Result<Self, ApiError> {
        let axum::extract::Query(pairs) = query.map_err(|e| {
            ApiError::BadRequest(format!("invalid query string: {}", e.body_text()))
        })?;
        let mut map = HashMap::new();
        for (k, v) in pairs {
            if k == "access_token" {
                continue;
            }
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {k:?} (allowed: {})",
                    allowed.join(", ")
                )));
            }
            map.insert(k, v);
        }
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!(
                    "limit must be an integer in 1..={max}, got {v:?}"
                ))),
            },
        }
    }
}

/// Runs a blocking backend call off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Task(e.to_string()))
}

pub use system::OPENAPI_DOCUMENT;
