//! `volume_spike`: a known endpoint moving far more bytes per call than it ever did —
//! exfiltration through a normal path, at a normal call rate, where neither a new edge
//! nor a rate spike shows. Judged per event-time window on the window's bytes per call
//! against the endpoint's own history (log scale: sizes are multiplicative), learned
//! during learning and from every window that raised nothing.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use serde_json::json;

use eastwest_model::{AlertKind, Call, CompactString, Workload};

use crate::config::DetectorConfig;
use crate::findings::{Finding, ev};
use crate::score::{Moments, surprise};
use crate::windows::WindowFinding;

/// Windows of history an endpoint needs before its volume is judged.
const MIN_HISTORY_WINDOWS: f64 = 5.0;
/// Trace ids kept per endpoint and window.
const MAX_TRACE_IDS: usize = 5;

/// One endpoint's calls with known sizes in the open window.
#[derive(Debug)]
pub(crate) struct EndpointVolume {
    source: Workload,
    destination: Workload,
    method: CompactString,
    route: CompactString,
    calls: f64,
    bytes: f64,
    trace_ids: Vec<String>,
    last_ns: i64,
}

/// Per-window volumes, keyed by the seeded hash of (source, destination, method, route).
pub(crate) type WindowVolumes = HashMap<u64, EndpointVolume, RandomState>;

/// Counts a call's bytes (request plus response) into its endpoint's window entry.
pub(crate) fn count(volumes: &mut WindowVolumes, key: u64, call: &Call, w: f64, max_keys: usize) {
    let bytes = match (call.request_bytes, call.response_bytes) {
        (None, None) => return,
        (req, resp) => req.unwrap_or(0).saturating_add(resp.unwrap_or(0)) as f64,
    };
    if !volumes.contains_key(&key) && volumes.len() >= max_keys {
        return;
    }
    let entry = volumes.entry(key).or_insert_with(|| EndpointVolume {
        source: call.source.clone(),
        destination: call.destination.clone(),
        method: call.method.clone(),
        route: call.route.clone(),
        calls: 0.0,
        bytes: 0.0,
        trace_ids: Vec::new(),
        last_ns: call.event_time_ns,
    });
    entry.calls += w;
    entry.bytes += bytes * w;
    entry.last_ns = entry.last_ns.max(call.event_time_ns);
    if entry.trace_ids.len() < MAX_TRACE_IDS
        && !call.trace_id.is_empty()
        && !entry.trace_ids.iter().any(|t| *t == call.trace_id)
    {
        entry.trace_ids.push(call.trace_id.to_string());
    }
}

/// ln(1 + bytes per call) per active window, per endpoint.
#[derive(Debug, Default)]
struct History {
    moments: Moments,
    max: f64,
}

#[derive(Default)]
pub(crate) struct VolumeHistory {
    endpoints: HashMap<u64, History, RandomState>,
}

impl VolumeHistory {
    /// Judges a closed window's volumes (when `judge`), then folds the windows that
    /// raised nothing into the history.
    pub(crate) fn close(
        &mut self,
        volumes: WindowVolumes,
        judge: bool,
        width_secs: i64,
        config: &DetectorConfig,
    ) -> Vec<WindowFinding> {
        let mut out = Vec::new();
        let mut keys: Vec<u64> = volumes.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let v = &volumes[&key];
            if v.calls <= 0.0 {
                continue;
            }
            let per_call = v.bytes / v.calls;
            let x = per_call.ln_1p();
            let hist = self.endpoints.get(&key);
            let finding = hist
                .filter(|_| judge)
                .and_then(|h| judge_one(v, x, h, width_secs, config));
            let raised = finding.is_some();
            out.extend(finding);
            if !raised
                && (self.endpoints.len() < config.max_window_keys
                    || self.endpoints.contains_key(&key))
            {
                let h = self.endpoints.entry(key).or_default();
                h.moments.push(x);
                h.max = h.max.max(x);
            }
        }
        out
    }
}

fn judge_one(
    v: &EndpointVolume,
    x: f64,
    h: &History,
    width_secs: i64,
    config: &DetectorConfig,
) -> Option<WindowFinding> {
    let m = &h.moments;
    if m.windows < MIN_HISTORY_WINDOWS || v.bytes < config.volume_min_bytes as f64 || x <= h.max {
        return None;
    }
    let mean = m.sum / m.windows;
    let var = (m.sum_sq / m.windows - mean * mean).max(0.0);
    // A floor on the spread: a perfectly steady endpoint must not alert on a few bytes.
    let sd = var.sqrt().max(config.volume_min_log_sd);
    let z = (x - mean) / sd;
    let p = 0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2);
    let score = surprise(p);
    if score < config.window_min_score {
        return None;
    }
    let per_call = x.exp_m1();
    let usual = mean.exp_m1();
    let ratio = per_call / usual.max(1.0);
    let (src, dst) = (v.source.key(), v.destination.key());
    let summary = format!(
        "{src} → {dst} {} {} moved {} bytes per call over {:.0} calls in one {width_secs}s window ({:.0} bytes in all), ×{ratio:.0} its usual {} per call over {} windows (p ≈ {p:.2e}, score {score:.1})",
        v.method,
        v.route,
        per_call.round(),
        v.calls,
        v.bytes,
        usual.round(),
        m.windows
    );
    let finding = Finding {
        kind: AlertKind::VolumeSpike,
        score,
        sensitive: false,
        evidence: ev(&[
            ("window_calls", json!(v.calls)),
            ("window_bytes", json!(v.bytes)),
            ("bytes_per_call", json!(per_call.round())),
            ("history_bytes_per_call", json!(usual.round())),
            ("history_max_bytes_per_call", json!(h.max.exp_m1().round())),
            ("history_windows", json!(m.windows)),
            ("ratio", json!(ratio)),
            ("p_upper_tail", json!(p)),
        ]),
        summary,
        destination: Some(v.destination.clone()),
        method: Some(v.method.to_string()),
        route: Some(v.route.to_string()),
        rollout: None,
    };
    Some(WindowFinding {
        finding,
        source: v.source.clone(),
        entry: None,
        time_ns: v.last_ns,
        trace_ids: v.trace_ids.clone(),
    })
}
