//! The service graph, one edge, one service with its blast radius.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::{Params, blocking};
use crate::ApiError;
use crate::graph::{EdgeStatus, GraphSnapshot, blast_radius, knows_service, overlay_alerted};
use crate::state::ApiState;
use crate::store::AlertFilter;

/// Alerts listed with one edge.
const EDGE_ALERTS: usize = 100;

async fn snapshot(state: &ApiState) -> Result<GraphSnapshot, ApiError> {
    let backend = state.inner.backend.clone();
    let mut snapshot = blocking(move || backend.graph()).await?;
    let alerted = state.inner.store.run(|s| s.alerted_edges()).await?;
    overlay_alerted(&mut snapshot, &alerted);
    Ok(snapshot)
}

pub(crate) async fn graph(State(state): State<ApiState>) -> Result<Json<GraphSnapshot>, ApiError> {
    Ok(Json(snapshot(&state).await?))
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
