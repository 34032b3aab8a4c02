//! Alerts, incidents, operator actions and the SSE stream.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use eastwest_model::{AlertKind, AlertState, Severity};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{Params, blocking};
use crate::ApiError;
use crate::metrics::ApiMetrics;
use crate::state::ApiState;
use crate::store::{AlertFilter, Cursor, DEFAULT_PAGE, MAX_PAGE, parse_state};

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

const MAX_ACTOR_CHARS: usize = 200;

fn parse_filter(params: &Params) -> Result<AlertFilter, ApiError> {
    let mut filter = AlertFilter {
        limit: params.limit(DEFAULT_PAGE, MAX_PAGE)?,
        ..Default::default()
    };
    if let Some(kinds) = params.get("kind") {
        for k in kinds.split(',') {
            filter.kinds.push(AlertKind::parse(k.trim()).ok_or_else(|| {
                let all: Vec<_> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
                ApiError::BadRequest(format!(
                    "unknown kind {k:?} (expected one of {})",
                    all.join(", ")
                ))
            })?);
        }
    }
    if let Some(s) = params.get("severity") {
        filter.min_severity = Some(Severity::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown severity {s:?} (expected one of info, low, medium, high, critical)"
            ))
        })?);
    }
    if let Some(s) = params.get("since") {
        let since = DateTime::parse_from_rfc3339(s)
            .map_err(|e| ApiError::BadRequest(format!("since must be an RFC 3339 time: {e}")))?;
        filter.since = Some(since.with_timezone(&Utc));
    }
    if let Some(s) = params.get("state") {
        filter.state = Some(parse_state(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown state {s:?} (expected one of open, acked, accepted)"
            ))
        })?);
    }
    if let Some(c) = params.get("before") {
        filter.before = Some(Cursor::parse(c)?);
    }
    filter.source = params.get("source").map(str::to_string);
    filter.destination = params.get("destination").map(str::to_string);
    filter.incident = params.get("incident").map(str::to_string);
    Ok(filter)
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(
        query,
        &[
            "kind",
            "severity",
            "since",
            "state",
            "limit",
            "before",
            "source",
            "destination",
            "incident",
        ],
    )?;
    let filter = parse_filter(&params)?;
    let page = state
        .inner
        .store
        .run(move |s| s.list_alerts(&filter))
        .await?;
    Ok(Json(serde_json::to_value(page)?))
}

pub(crate) async fn get_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let lookup = id.clone();
    match state.inner.store.run(move |s| s.get_alert(&lookup)).await? {
        Some(record) => Ok(Json(serde_json::to_value(record)?)),
        None => Err(ApiError::NotFound(format!("alert {id:?}"))),
    }
}

/// Who acted when the body names no one, from how the request came: with the API token
/// (`Authorization`; the guard has checked it when one is configured), from a browser
/// (the dashboard: the guard lets no other page through), or from a program (`cli`).
fn channel(headers: &axum::http::HeaderMap) -> &'static str {
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        "api-token"
    } else if headers.contains_key(axum::http::header::ORIGIN)
        || headers.contains_key("sec-fetch-site")
    {
        "dashboard"
    } else {
        "cli"
    }
}

/// Optional `{"by": "name"}`; without it the actor is the request's [`channel`].
fn actor(body: &Bytes, headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(channel(headers).into());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("body must be JSON like {{\"by\":\"name\"}}: {e}"))
    })?;
    match value.get("by") {
        None | Some(Value::Null) => Ok(channel(headers).into()),
        Some(Value::String(s)) if !s.trim().is_empty() => {
            Ok(s.trim().chars().take(MAX_ACTOR_CHARS).collect())
        }
        Some(_) => Err(ApiError::BadRequest(
            "\"by\" must be a non-empty string".into(),
        )),
    }
}

async fn change_state(
    state: ApiState,
    id: String,
    to: AlertState,
    body: Bytes,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let by = actor(&body, &headers)?;
    let lookup = id.clone();
    let current = state.inner.store.run(move |s| s.get_alert(&lookup)).await?;
    let Some(current) = current else {
        return Err(ApiError::NotFound(format!("alert {id:?}")));
    };
    if to == AlertState::Acked && current.alert.state == AlertState::Accepted {
        return Err(ApiError::Conflict(format!(
            "alert {id:?} is already accepted"
        )));
    }
    if to == AlertState::Accepted && current.alert.state != AlertState::Accepted {
        // Learn first: if the backend panics the alert stays open and can be retried.
        let backend = state.inner.backend.clone();
        let alert = current.alert.clone();
        blocking(move || backend.accept(&alert)).await?;
    }
    let updated = state
        .inner
        .store
        .run(move |s| s.set_state(&id, to, &by))
        .await?;
    let updated = updated.ok_or_else(|| ApiError::NotFound("alert vanished".into()))?;
    state.inner.events.alert(&updated);
    Ok(Json(serde_json::to_value(updated)?))
}

pub(crate) async fn ack(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    change_state(state, id, AlertState::Acked, body, headers).await
}

pub(crate) async fn accept(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    change_state(state, id, AlertState::Accepted, body, headers).await
}

pub(crate) async fn list_incidents(
    State(state): State<ApiState>,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query, &["limit"])?;
    let limit = params.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let incidents = state
        .inner
        .store
        .run(move |s| s.list_incidents(limit))
        .await?;
    Ok(Json(json!({ "incidents": incidents })))
}

pub(crate) async fn get_incident(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let lookup = id.clone();
    match state
        .inner
        .store
        .run(move |s| s.get_incident(&lookup))
        .await?
    {
        Some((incident, alerts)) => Ok(Json(json!({ "incident": incident, "alerts": alerts }))),
        None => Err(ApiError::NotFound(format!("incident {id:?}"))),
    }
}

/// Decrements the SSE client gauge when the stream is dropped.
struct ClientGuard(std::sync::Arc<ApiMetrics>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `event: alert` / `event: incident` with the JSON; `event: resync` (`{"missed": n}`)
/// when this client fell behind and should re-read the lists. Starts with `event: hello`.
pub(crate) async fn stream(
    State(state): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let inner = &state.inner;
    let receiver = inner.events.subscribe();
    inner.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientGuard(inner.metrics.clone());
    let hello = futures::stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let events = futures::stream::unfold((receiver, guard), |(mut receiver, guard)| async move {
        let event = match receiver.recv().await {
            Ok(frame) => Event::default()
                .event(frame.name)
                .id(frame.seq.to_string())
                .data(frame.data.as_str()),
            Err(RecvError::Lagged(missed)) => {
                guard.0.sse_resyncs.fetch_add(1, Ordering::Relaxed);
                Event::default()
                    .event("resync")
                    .data(json!({ "missed": missed }).to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (receiver, guard)))
    });
    let shutdown = inner.shutdown.clone().cancelled_owned();
    Sse::new(hello.chain(events).take_until(shutdown))
        .keep_alive(KeepAlive::new().interval(inner.config.sse_keep_alive))
}

#[cfg(test)]
mod actor_tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_actor_is_the_named_one_else_how_the_request_came() {
        let none = Bytes::new();
        let token = headers(&[(header::AUTHORIZATION.as_str(), "Bearer t")]);
        let browser = headers(&[("sec-fetch-site", "same-origin")]);
        assert_eq!(actor(&none, &token).unwrap(), "api-token");
        assert_eq!(actor(&none, &browser).unwrap(), "dashboard");
        assert_eq!(actor(&none, &HeaderMap::new()).unwrap(), "cli");
        assert_eq!(
            actor(&Bytes::from_static(b"{\"by\":null}"), &browser).unwrap(),
            "dashboard"
        );
        assert_eq!(
            actor(&Bytes::from_static(b"{\"by\":\" alice \"}"), &token).unwrap(),
            "alice"
        );
        assert!(actor(&Bytes::from_static(b"{\"by\":3}"), &token).is_err());
    }
}
