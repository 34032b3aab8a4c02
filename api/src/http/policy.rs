//! Policies from what eastwest observed (`eastwest-policy`): generated YAML or the rule
//! set as JSON, backtests and drift of posted policies over the call history, and the
//! suggested deny rule of an alert. All read-only; the POSTs carry the policies to
//! analyse as their body and, like every POST, need the guard's header. The data dir is
//! the alert store's directory.

use std::path::PathBuf;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use eastwest_policy::{
    BacktestReport, DenySuggestion, DriftReport, Format, PolicyError, PolicySet,
};

use super::Params;
use crate::ApiError;
use crate::state::ApiState;

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn data_dir(state: &ApiState) -> PathBuf {
    state
        .store()
        .path()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn time(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            eastwest_policy::parse_time(v).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be an RFC 3339 time or a duration such as 7d, got {v:?}"
                ))
            })
        })
        .transpose()
}

fn policy_error(e: PolicyError) -> ApiError {
    match e {
        PolicyError::Parse { .. } | PolicyError::UnknownFormat(_) => {
            ApiError::BadRequest(e.to_string())
        }
        PolicyError::NoSnapshot(_) => ApiError::NotFound(e.to_string()),
        other => ApiError::Task(format!(
            "{other}: {}",
            std::error::Error::source(&other)
                .map(|s| s.to_string())
                .unwrap_or_default()
        )),
    }
}

async fn alerts(state: &ApiState) -> Result<Vec<eastwest_model::Alert>, ApiError> {
    state.store().run(|s| s.all_alerts()).await
}

/// `GET /policy?format=istio|networkpolicy|cilium|linkerd|json&namespace=&since=&until=`.
pub(crate) async fn generate(
    State(state): State<ApiState>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let params = Params::parse(query, &["format", "namespace", "since", "until"])?;
    let format = params.get("format").unwrap_or("istio").to_owned();
    // Checked before any reading, so a typo is told as such.
    let dialect = match format.as_str() {
        "json" => None,
        f => Some(Format::parse(f).map_err(policy_error)?),
    };
    let (since, until) = (time(&params, "since")?, time(&params, "until")?);
    let since = since.or(until.map(|_| 0));
    let alerts = alerts(&state).await?;
    let mut rules = eastwest_policy::rules_from_data_dir(&data_dir(&state), since, until, &alerts)
        .await
        .map_err(policy_error)?;
    if let Some(ns) = params.get("namespace") {
        rules = rules.in_namespace(ns);
    }
    let Some(format) = dialect else {
        return Ok(Json(rules).into_response());
    };
    let yaml = eastwest_policy::compile(&rules, format)
        .to_yaml(&rules)
        .map_err(policy_error)?;
    Ok((
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        yaml,
    )
        .into_response())
}

fn policies(body: &Bytes) -> Result<(Vec<eastwest_policy::Document>, PolicySet), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body must be UTF-8 YAML".into()))?;
    let docs = eastwest_policy::parse_yaml(text).map_err(policy_error)?;
    if docs.is_empty() {
        return Err(ApiError::BadRequest(
            "the body holds no policy document".into(),
        ));
    }
    let set = PolicySet::new(&docs).map_err(policy_error)?;
    Ok((docs, set))
}

const DEFAULT_WINDOW: &str = "7d";

/// `POST /policy/backtest?since=&until=` with policies as the YAML body.
pub(crate) async fn backtest(
    State(state): State<ApiState>,
    query: QueryPairs,
    body: Bytes,
) -> Result<Json<BacktestReport>, ApiError> {
    let params = Params::parse(query, &["since", "until"])?;
    let (_, set) = policies(&body)?;
    let since = time(&params, "since")?.or_else(|| eastwest_policy::parse_time(DEFAULT_WINDOW));
    let until = time(&params, "until")?;
    let groups = eastwest_policy::call_groups(&data_dir(&state), since, until)
        .await
        .map_err(policy_error)?;
    let alerts = alerts(&state).await?;
    let fmt = |t: Option<i64>| t.map(eastwest_model::format_event_time);
    Ok(Json(eastwest_policy::backtest(
        &set,
        groups,
        &alerts,
        fmt(since),
        fmt(until),
    )))
}

/// `POST /policy/drift?since=&unused_for=` with the policies in force as the YAML body.
pub(crate) async fn drift(
    State(state): State<ApiState>,
    query: QueryPairs,
    body: Bytes,
) -> Result<Json<DriftReport>, ApiError> {
    let params = Params::parse(query, &["since", "unused_for"])?;
    let (docs, set) = policies(&body)?;
    let since = time(&params, "since")?.or_else(|| eastwest_policy::parse_time(DEFAULT_WINDOW));
    let cutoff = time(&params, "unused_for")?
        .or_else(|| eastwest_policy::parse_time("3d"))
        .unwrap_or(0);
    let groups = eastwest_policy::call_groups(&data_dir(&state), since, None)
        .await
        .map_err(policy_error)?;
    Ok(Json(eastwest_policy::drift(&docs, &set, &groups, cutoff)))
}

/// `GET /alerts/{id}/deny-rule`: the suggested minimal deny rules (nothing is applied).
pub(crate) async fn deny_rule(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<DenySuggestion>, ApiError> {
    let wanted = id.clone();
    let record = state.store().run(move |s| s.get_alert(&wanted)).await?;
    let record = record.ok_or_else(|| ApiError::NotFound(format!("no alert {id:?}")))?;
    Ok(Json(eastwest_policy::deny_rules(&record.alert)))
}
