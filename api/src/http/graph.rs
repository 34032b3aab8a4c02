//! The service graph (whole or cut), namespaces, search, one edge, one service with
//! its blast radius.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use eastwest_model::Protocol;
use serde_json::{Value, json};

use super::{Params, blocking, etag};
use crate::ApiError;
use crate::graph::{EdgeStatus, GraphSnapshot, blast_radius, knows_service, overlay_alerted};
use crate::graph_view::{
    self, DEFAULT_SEARCH_LIMIT, GraphQuery, MAX_HOPS, MAX_SEARCH_LIMIT, MtlsFilter,
};
use crate::state::ApiState;
use crate::store::AlertFilter;

/// Most services one cut of the graph may be limited to (`limit`).
const MAX_GRAPH_NODES: usize = 5000;
/// Alerts listed with one edge.
const EDGE_ALERTS: usize = 100;

async fn snapshot(state: &ApiState) -> Result<GraphSnapshot, ApiError> {
    let backend = state.inner.backend.clone();
    let mut snapshot = blocking(move || backend.graph()).await?;
    let alerted = state.inner.store.run(|s| s.alerted_edges()).await?;
    overlay_alerted(&mut snapshot, &alerted);
    Ok(snapshot)
}

/// `GET /api/v1/graph`: the service graph, cut by `namespace`, `focus` (+ `hops`),
/// `status` (comma-separated, with one hop of context) and `mtls`; with an ETag.
pub(crate) async fn graph(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(
        query,
        &[
            "namespace",
            "focus",
            "hops",
            "status",
            "mtls",
            "protocol",
            "limit",
        ],
    )?;
    let query = graph_query(&params)?;
    let snapshot = snapshot(&state).await?;
    let view = blocking(move || graph_view::filter(&snapshot, &query)).await?;
    etag::json(&headers, &view)
}

fn graph_query(params: &Params) -> Result<GraphQuery, ApiError> {
    let hops = match params.get("hops") {
        None => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_HOPS).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "hops must be an integer in 1..={MAX_HOPS}, got {v:?}"
                )));
            }
        },
    };
    let mut statuses = Vec::new();
    for s in params.get("status").into_iter().flat_map(|s| s.split(',')) {
        statuses.push(match s.trim() {
            "baseline" => EdgeStatus::Baseline,
            "new" => EdgeStatus::New,
            "alerted" => EdgeStatus::Alerted,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown status {other:?} (expected baseline, new, alerted)"
                )));
            }
        });
    }
    let mtls = match params.get("mtls") {
        None => None,
        Some("mtls") => Some(MtlsFilter::Mtls),
        Some("plaintext") => Some(MtlsFilter::Plaintext),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "mtls must be mtls or plaintext, got {other:?}"
            )));
        }
    };
    let protocol = match params.get("protocol") {
        None => None,
        Some(p) => Some(Protocol::parse(p).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "protocol must be http, grpc, db, messaging or tcp, got {p:?}"
            ))
        })?),
    };
    Ok(GraphQuery {
        namespace: params.get("namespace").map(str::to_string),
        focus: params.get("focus").map(str::to_string),
        hops,
        statuses,
        mtls,
        protocol,
        limit: params
            .get("limit")
            .map(|_| params.limit(MAX_GRAPH_NODES, MAX_GRAPH_NODES))
            .transpose()?,
    })
}

/// `GET /api/v1/graph/namespaces`: namespaces as nodes, edges added up; with an ETag.
pub(crate) async fn namespaces(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let snapshot = snapshot(&state).await?;
    let graph = blocking(move || graph_view::namespace_graph(&snapshot)).await?;
    etag::json(&headers, &graph)
}

/// `GET /api/v1/graph/search?q=`: services whose key contains `q`.
pub(crate) async fn search(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query, &["q", "limit"])?;
    let limit = params.limit(DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT)?;
    let q = params.get("q").unwrap_or("").to_string();
    let snapshot = snapshot(&state).await?;
    let services: Vec<_> = graph_view::search(&snapshot, &q, limit)
        .into_iter()
        .cloned()
        .collect();
    Ok(Json(json!({ "services": services })))
}

pub(crate) async fn edge(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query, &["source", "destination"])?;
    let (Some(source), Some(destination)) = (params.get("source"), params.get("destination"))
    else {
        return Err(ApiError::BadRequest(
            "source and destination (workload keys) are required".into(),
        ));
    };
    let (source, destination) = (source.to_string(), destination.to_string());
    let backend = state.inner.backend.clone();
    let (s, d) = (source.clone(), destination.clone());
    let Some(mut detail) = blocking(move || backend.edge_detail(&s, &d)).await? else {
        return Err(ApiError::NotFound(format!(
            "edge {source} -> {destination}"
        )));
    };
    let filter = AlertFilter {
        source: Some(source),
        destination: Some(destination),
        limit: EDGE_ALERTS,
        ..Default::default()
    };
    detail.alerts = state
        .inner
        .store
        .run(move |s| s.list_alerts(&filter))
        .await?
        .alerts;
    if detail
        .alerts
        .iter()
        .any(|a| a.state != eastwest_model::AlertState::Accepted)
    {
        detail.edge.status = EdgeStatus::Alerted;
    }
    Ok(Json(serde_json::to_value(detail)?))
}

pub(crate) async fn service(
    State(state): State<ApiState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = snapshot(&state).await?;
    if !knows_service(&snapshot, &key) {
        return Err(ApiError::NotFound(format!("service {key:?}")));
    }
    let calls: Vec<_> = snapshot.edges.iter().filter(|e| e.source == key).collect();
    let callers: Vec<_> = snapshot
        .edges
        .iter()
        .filter(|e| e.destination == key)
        .collect();
    let radius = blast_radius(&snapshot, &key);
    Ok(Json(
        json!({ "service": key, "calls": calls, "callers": callers, "blast_radius": radius }),
    ))
}
