//! Detector parameters, each with a documented default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::DetectorError;

/// Surprise (−ln p) below which a finding is not raised: p ≥ e^−4 ≈ 1.8%.
pub const DEFAULT_MIN_SCORE: f64 = 4.0;
/// Surprise below which a *windowed* finding (fan-out, rate spike, probing) is not
/// raised: p ≤ e^−10 ≈ 4.5e-5. Windows are judged for every source and edge every
/// window, so the bar sits higher than for per-call novelty (≈ one chance false alarm
/// per 20,000 source-or-edge windows).
pub const DEFAULT_WINDOW_MIN_SCORE: f64 = 10.0;
/// Findings from one source within this event time join one incident.
pub const DEFAULT_INCIDENT_WINDOW: Duration = Duration::from_secs(600);
/// New edges of one source within this time of each other share one incident.
pub const DEFAULT_SLOW_INCIDENT_WINDOW: Duration = Duration::from_secs(2 * 3600);
/// Example trace ids kept per alert.
pub const DEFAULT_MAX_TRACE_IDS: usize = 5;
/// Calls an entry must have been seen with before a context anomaly under it counts.
pub const DEFAULT_MIN_ENTRY_CALLS: f64 = 20.0;
/// Calls on an edge/workload before its mTLS habit is trusted.
pub const DEFAULT_MIN_MTLS_CALLS: f64 = 20.0;
/// Distinct alerts kept in memory (oldest forgotten first; the store keeps them all).
pub const DEFAULT_MAX_TRACKED_ALERTS: usize = 100_000;
/// Pseudo-windows of prior belief mixed into every window history (short histories
/// stay cautious: one window of history cannot make a count look impossible).
pub const DEFAULT_PRIOR_WINDOWS: f64 = 1.0;
/// Prior mean of distinct destinations (and endpoints) per active window of a source.
pub const DEFAULT_FAN_OUT_PRIOR_MEAN: f64 = 2.0;
/// New destinations one source must reach in a window before their number alone (vs
/// the source's Good–Turing rate of adding callees) can raise `fan_out`; fewer are
/// left to `new_edge`.
pub const DEFAULT_FAN_OUT_MIN_NEW: usize = 3;
/// Prior mean of calls per active window on an edge.
pub const DEFAULT_RATE_PRIOR_MEAN: f64 = 5.0;
/// Prior mean of distinct denied targets (destination + route) per window of a source.
pub const DEFAULT_PROBE_PRIOR_MEAN: f64 = 0.5;
/// Divide window counts by the mesh-wide surge factor (traffic of everything else
/// relative to its history), so a global ×5 surge does not fire per edge or source.
pub const DEFAULT_SURGE_NORMALISATION: bool = true;
/// New info-to-medium alerts per budget window from the sources of one pool (the
/// namespace of sources the baseline knows; one shared pool for sources it does not);
/// beyond it such findings are counted in one `alert_storm` alert. High and critical
/// findings are never held back.
pub const DEFAULT_ALERT_BUDGET_PER_NAMESPACE: usize = 50;
/// New info-to-medium alerts per source workload per budget window, inside its pool's
/// budget: one source (or one forged name) cannot spend what other sources are owed.
pub const DEFAULT_ALERT_BUDGET_PER_SOURCE: usize = 10;
/// Event-time window of the alert budget.
pub const DEFAULT_BUDGET_WINDOW: Duration = Duration::from_secs(600);
/// An updated alert (count/last_seen) is re-emitted at most this often in event time;
/// pending updates are flushed by `advance_to`.
pub const DEFAULT_MIN_UPDATE_INTERVAL: Duration = Duration::from_secs(1);
/// Cap on sources and edges tracked in one open window (attacker-controlled names).
pub const DEFAULT_MAX_WINDOW_KEYS: usize = 50_000;
/// Cap on distinct destinations/endpoints/denied targets tracked per source per window.
pub const DEFAULT_MAX_TARGETS_PER_SOURCE: usize = 1_000;
/// HTTP statuses that count as a denial for probing.
pub const DEFAULT_DENIAL_STATUSES: [u32; 3] = [401, 403, 404];
/// Cap on how far a rise in the requests that use an edge may explain a rise of its
/// rate: request entries are telemetry, and forged ones must not buy unbounded room.
pub const DEFAULT_MAX_LOAD_FACTOR: f64 = 10.0;
/// An endpoint's window must move at least this much before its volume is judged.
pub const DEFAULT_VOLUME_MIN_BYTES: u64 = 256 << 10;
/// Spread floor (ln scale): a steady endpoint's bytes per call must rise well past
/// ×1.6 per standard deviation before it is surprising.
pub const DEFAULT_VOLUME_MIN_LOG_SD: f64 = 0.5;
/// How long a workload first seen during detection keeps one notice for its new edges.
pub const DEFAULT_NEW_WORKLOAD_GRACE: Duration = Duration::from_secs(3600);
/// gRPC status codes that count as a denial: PERMISSION_DENIED, UNIMPLEMENTED (a method
/// the server does not have: what enumerating a gRPC API gets back) and UNAUTHENTICATED.
pub const DEFAULT_GRPC_DENIAL_STATUSES: [u32; 3] = [7, 12, 16];
/// Envoy response flags that count as a denial (no route, ext-authz denied, RBAC).
pub const DEFAULT_DENIAL_FLAGS: [&str; 3] = ["NR", "UAEX", "RBAC"];
/// Surprise added to a new edge that continues a chain of new edges (−ln of a ~1%
/// chance that two unrelated novelties line up).
pub const DEFAULT_CHAIN_BONUS: f64 = 4.6;
/// Score of a route `{overflow}` (the collector's per-edge route cap was hit): a
/// cardinality attack or scan, raised as `new_endpoint` with `route_overflow: true`.
pub const DEFAULT_OVERFLOW_SCORE: f64 = 8.0;
/// Weight of a SPIFFE principal whose `ns/…` contradicts the claimed namespace.
pub const DEFAULT_IDENTITY_NAMESPACE_WEIGHT: f64 = 8.0;
/// Event time after a new version's first call during which what it newly calls (new
/// edges, endpoints and request contexts) is learned as part of the rollout and reported
/// in one info alert per version, not one alert per call.
pub const DEFAULT_ROLLOUT_GRACE: Duration = Duration::from_secs(3600);
/// Event time a new version has, from its first call, to show that it replaced the old
/// one (the old versions' traffic fell while the new one's rose). Until then what it
/// newly calls is held; without that evidence by the end, it alerts as usual.
pub const DEFAULT_ROLLOUT_EVIDENCE_WINDOW: Duration = Duration::from_secs(600);
/// Distinct findings (endpoint or request context) one version may fold into its
/// rollout notice; beyond it they alert.
pub const DEFAULT_ROLLOUT_MAX_FOLDED: usize = 50;
/// Weight of a caller that cannot be attributed (no client span, no principal) calling,
/// over an edge the baseline never saw, a destination whose baseline callers were all
/// attributed; added to the surprise of that destination seeing one.
pub const DEFAULT_UNATTRIBUTED_WEIGHT: f64 = 3.0;

/// A route or address pattern that makes a call sensitive, with the surprise it adds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SensitivePattern {
    pub name: String,
    /// Regular expression matched against the route and against `host:port`.
    pub pattern: String,
    pub weight: f64,
}

fn pattern(name: &str, pattern: &str, weight: f64) -> SensitivePattern {
    SensitivePattern {
        name: name.into(),
        pattern: pattern.into(),
        weight,
    }
}

/// The built-in patterns (docs/DETECTION.md has the table with the reasons for each
/// weight). Ports are matched as `:PORT` at the end of the destination address, so they
/// need telemetry that names it (`server.address` + `server.port`, a URL, an Istio
/// cluster, an access log's upstream host).
pub fn default_sensitive_patterns() -> Vec<SensitivePattern> {
    vec![
        pattern(
            "admin",
            r"(?i)(^|/)(admin|_admin|administrator|internal/admin)(/|$)",
            6.0,
        ),
        pattern("actuator", r"(?i)(^|/)actuator(/|$)", 6.0),
        pattern("debug", r"(?i)(^|/)(debug|pprof|_debug)(/|$)", 6.0),
        pattern(
            "metrics",
            r"(?i)(^|/)(metrics|prometheus|stats/prometheus)(/|$)",
            3.0,
        ),
        pattern(
            "migrations",
            r"(?i)(^|/)(migrate|migrations?|flyway|liquibase)(/|$)",
            5.0,
        ),
        pattern(
            "envoy-admin",
            r"(^|:)15000$|(^|/)(config_dump|clusters|quitquitquit|drain_listeners)(/|$)",
            7.0,
        ),
        // Route forms: `package.Service/Method`, `/package.Service/Method`, and without the
        // `grpc.` package prefix (converters drop it, as Java agents prepend it).
        pattern(
            "grpc-admin",
            r"^/?(grpc\.)?(reflection\.v1(alpha)?\.ServerReflection|channelz\.v1\.Channelz|admin\.v1\.[A-Za-z]+|testing\.XdsUpdateClientConfigureService|lb\.v1\.LoadReporter)/",
            6.0,
        ),
        pattern(
            "cloud-metadata",
            r"(?i)169\.254\.169\.254|169\.254\.170\.2(:\d+)?$|168\.63\.129\.16(:\d+)?$|metadata\.google\.internal|fd00:ec2::254|(^|/)latest/(meta-data|user-data|api/token)(/|$)|(^|/)computeMetadata/v1(/|$)|(^|/)metadata/identity/oauth2/token(/|$)",
            9.0,
        ),
        // Port 443 is every HTTPS server's: it counts only with the API server's name.
        pattern(
            "kubernetes-api",
            r"(?i)^kubernetes(\.default(\.svc(\.[a-z0-9-]+)*)?)?(:(443|6443))?$|:6443$",
            7.0,
        ),
        pattern(
            "kubernetes-secrets",
            r"(?i)(^|/)api/v1/(namespaces/[^/]+/)?secrets(/|$)|(^|/)api/v1/namespaces/[^/]+/serviceaccounts/[^/]+/token(/|$)",
            9.0,
        ),
        pattern(
            "kubernetes-pod-exec",
            r"(?i)(^|/)api/v1/namespaces/[^/]+/pods/[^/]+/(exec|attach|portforward)(/|$)",
            9.0,
        ),
        pattern(
            "kubernetes-rbac-review",
            r"(?i)(^|/)apis/authorization\.k8s\.io/v1(beta1)?/(self|local)?subject(access|rules)reviews(/|$)|(^|/)apis/authentication\.k8s\.io/v1(beta1|alpha1)?/selfsubjectreviews(/|$)",
            7.0,
        ),
        pattern(
            "istiod",
            r"(?i)^istiod(\.istio-system)?(\.svc(\.[a-z0-9-]+)*)?(:\d+)?$|:(15010|15012|15014|15017)$",
            7.0,
        ),
        pattern("etcd", r":(2379|2380)$", 9.0),
        pattern("kubelet", r":(10250|10255)$", 8.0),
    ]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    pub min_score: f64,
    pub window_min_score: f64,
    #[serde(with = "humantime_serde")]
    pub incident_window: Duration,
    /// How long a source's new-edge alerts keep its incident open (low-and-slow
    /// movement: one new callee at a time).
    #[serde(with = "humantime_serde")]
    pub slow_incident_window: Duration,
    pub max_trace_ids: usize,
    pub min_entry_calls: f64,
    pub min_mtls_calls: f64,
    pub max_tracked_alerts: usize,
    pub sensitive: Vec<SensitivePattern>,
    pub prior_windows: f64,
    pub fan_out_prior_mean: f64,
    pub fan_out_min_new: usize,
    pub rate_prior_mean: f64,
    pub probe_prior_mean: f64,
    pub surge_normalisation: bool,
    /// `1` turns load-aware rates off.
    pub max_load_factor: f64,
    pub alert_budget_per_namespace: usize,
    pub alert_budget_per_source: usize,
    #[serde(with = "humantime_serde")]
    pub budget_window: Duration,
    #[serde(with = "humantime_serde")]
    pub min_update_interval: Duration,
    pub max_window_keys: usize,
    pub max_targets_per_source: usize,
    /// HTTP statuses (non-gRPC calls).
    pub denial_statuses: Vec<u32>,
    /// gRPC status codes (gRPC calls).
    pub grpc_denial_statuses: Vec<u32>,
    pub denial_flags: Vec<String>,
    pub chain_bonus: f64,
    pub overflow_score: f64,
    pub identity_namespace_weight: f64,
    pub unattributed_weight: f64,
    /// `0s` turns rollout folding off (every novelty of a new version alerts).
    #[serde(with = "humantime_serde")]
    pub rollout_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub rollout_evidence_window: Duration,
    pub rollout_max_folded: usize,
    /// Bytes a window must move on an endpoint before its volume is judged.
    pub volume_min_bytes: u64,
    /// Floor on an endpoint's spread of ln(bytes per call) across windows.
    pub volume_min_log_sd: f64,
    /// How long a new workload's new edges fold into its one notice; `0s` turns notices
    /// off (its new edges are scored as `new_edge`).
    #[serde(with = "humantime_serde")]
    pub new_workload_grace: Duration,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_score: DEFAULT_MIN_SCORE,
            window_min_score: DEFAULT_WINDOW_MIN_SCORE,
            incident_window: DEFAULT_INCIDENT_WINDOW,
            slow_incident_window: DEFAULT_SLOW_INCIDENT_WINDOW,
            max_trace_ids: DEFAULT_MAX_TRACE_IDS,
            min_entry_calls: DEFAULT_MIN_ENTRY_CALLS,
            min_mtls_calls: DEFAULT_MIN_MTLS_CALLS,
            max_tracked_alerts: DEFAULT_MAX_TRACKED_ALERTS,
            sensitive: default_sensitive_patterns(),
            prior_windows: DEFAULT_PRIOR_WINDOWS,
            fan_out_prior_mean: DEFAULT_FAN_OUT_PRIOR_MEAN,
            fan_out_min_new: DEFAULT_FAN_OUT_MIN_NEW,
            rate_prior_mean: DEFAULT_RATE_PRIOR_MEAN,
            probe_prior_mean: DEFAULT_PROBE_PRIOR_MEAN,
            surge_normalisation: DEFAULT_SURGE_NORMALISATION,
            max_load_factor: DEFAULT_MAX_LOAD_FACTOR,
            alert_budget_per_namespace: DEFAULT_ALERT_BUDGET_PER_NAMESPACE,
            alert_budget_per_source: DEFAULT_ALERT_BUDGET_PER_SOURCE,
            budget_window: DEFAULT_BUDGET_WINDOW,
            min_update_interval: DEFAULT_MIN_UPDATE_INTERVAL,
            max_window_keys: DEFAULT_MAX_WINDOW_KEYS,
            max_targets_per_source: DEFAULT_MAX_TARGETS_PER_SOURCE,
            denial_statuses: DEFAULT_DENIAL_STATUSES.to_vec(),
            grpc_denial_statuses: DEFAULT_GRPC_DENIAL_STATUSES.to_vec(),
            denial_flags: DEFAULT_DENIAL_FLAGS.iter().map(|s| s.to_string()).collect(),
            chain_bonus: DEFAULT_CHAIN_BONUS,
            overflow_score: DEFAULT_OVERFLOW_SCORE,
            identity_namespace_weight: DEFAULT_IDENTITY_NAMESPACE_WEIGHT,
            unattributed_weight: DEFAULT_UNATTRIBUTED_WEIGHT,
            rollout_grace: DEFAULT_ROLLOUT_GRACE,
            rollout_evidence_window: DEFAULT_ROLLOUT_EVIDENCE_WINDOW,
            rollout_max_folded: DEFAULT_ROLLOUT_MAX_FOLDED,
            new_workload_grace: DEFAULT_NEW_WORKLOAD_GRACE,
            volume_min_bytes: DEFAULT_VOLUME_MIN_BYTES,
            volume_min_log_sd: DEFAULT_VOLUME_MIN_LOG_SD,
        }
    }
}

impl DetectorConfig {
    pub fn validate(&self) -> Result<(), DetectorError> {
        if !self.min_score.is_finite() || self.min_score < 0.0 {
            return Err(DetectorError::Config(
                "min_score must be a finite number ≥ 0".into(),
            ));
        }
        let finite_non_negative = [
            ("window_min_score", self.window_min_score),
            ("chain_bonus", self.chain_bonus),
            ("overflow_score", self.overflow_score),
            ("identity_namespace_weight", self.identity_namespace_weight),
            ("unattributed_weight", self.unattributed_weight),
            ("min_entry_calls", self.min_entry_calls),
            ("min_mtls_calls", self.min_mtls_calls),
        ];
        for (name, v) in finite_non_negative {
            if !v.is_finite() || v < 0.0 {
                return Err(DetectorError::Config(format!(
                    "{name} must be a finite number ≥ 0"
                )));
            }
        }
        let finite_positive = [
            ("prior_windows", self.prior_windows),
            ("fan_out_prior_mean", self.fan_out_prior_mean),
            ("rate_prior_mean", self.rate_prior_mean),
            ("probe_prior_mean", self.probe_prior_mean),
            ("max_load_factor", self.max_load_factor),
            ("volume_min_log_sd", self.volume_min_log_sd),
        ];
        for (name, v) in finite_positive {
            if !v.is_finite() || v <= 0.0 {
                return Err(DetectorError::Config(format!(
                    "{name} must be a finite number > 0"
                )));
            }
        }
        if self.incident_window.is_zero() || self.budget_window.is_zero() {
            return Err(DetectorError::Config(
                "incident_window and budget_window must be greater than zero".into(),
            ));
        }
        if self.alert_budget_per_namespace == 0
            || self.alert_budget_per_source == 0
            || self.max_window_keys == 0
            || self.max_targets_per_source == 0
            || self.max_trace_ids == 0
        {
            return Err(DetectorError::Config(
                "alert_budget_per_namespace, alert_budget_per_source, max_window_keys, max_targets_per_source and max_trace_ids must be at least 1".into(),
            ));
        }
        if self.max_tracked_alerts == 0 {
            return Err(DetectorError::Config(
                "max_tracked_alerts must be at least 1".into(),
            ));
        }
        for p in &self.sensitive {
            regex::Regex::new(&p.pattern).map_err(|e| {
                DetectorError::Config(format!("sensitive pattern {:?}: {e}", p.name))
            })?;
            if !p.weight.is_finite() || p.weight < 0.0 {
                return Err(DetectorError::Config(format!(
                    "sensitive pattern {:?}: weight must be ≥ 0",
                    p.name
                )));
            }
        }
        Ok(())
    }
}
