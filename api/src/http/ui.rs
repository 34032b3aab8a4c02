//! `GET /api/v1/ui`: what the dashboard needs from the config (the trace link template).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::ApiState;

pub(crate) async fn ui(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "trace_url_template": state.inner.config.trace_url_template }))
}
