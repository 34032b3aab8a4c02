//! Operator configuration of the API server and of webhook destinations.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use eastwest_model::{AlertKind, Severity};
use serde::{Deserialize, Serialize};

use crate::ApiError;

pub const DEFAULT_API_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4320);
/// Request bodies are tiny (`{"by":"name"}`); anything larger is refused.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events buffered per SSE client before it is told to `resync`.
pub const DEFAULT_SSE_BUFFER: usize = 1024;
/// Distinct alerts waiting for the store writer before `publish` applies back-pressure.
pub const DEFAULT_SINK_MAX_PENDING: usize = 50_000;
/// Edges exported as `traces_service_graph_*` series (attacker-controlled names).
pub const DEFAULT_METRICS_MAX_EDGES: usize = 10_000;

pub const DEFAULT_WEBHOOK_MAX_PER_MINUTE: u32 = 60;
pub const DEFAULT_WEBHOOK_MAX_ATTEMPTS: u32 = 8;
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_WEBHOOK_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_WEBHOOK_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The body-only `X-Eastwest-Signature` is still sent this release (deprecated).
pub const DEFAULT_WEBHOOK_LEGACY_SIGNATURE: bool = true;

/// `api_token` is a credential: `Debug` never shows it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    /// Bearer token required on `/api/v1/*` when set.
    pub api_token: Option<String>,
    /// Explicit opt-in to serve a non-loopback address without a token.
    pub insecure_no_auth: bool,
    pub max_body_bytes: usize,
    /// Base URL of the dashboard as users reach it (links in webhooks); defaults to
    /// `http://{addr}`.
    pub public_url: Option<String>,
    #[serde(with = "humantime_serde")]
    pub sse_keep_alive: Duration,
    pub sse_buffer: usize,
    pub sink_max_pending: usize,
    pub metrics_max_edges: usize,
    /// Extra names (`host` or `host:port`) the API answers to in the `Host` header, beside
    /// loopback names and addresses, IP literals of the bound address and `public_url`'s
    /// host. Any other `Host` is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// Serve `/metrics` without the token (for an in-cluster scraper) even when
    /// `api_token` is set; it lists every learned edge.
    pub metrics_public: bool,
    /// Turns every trace id on alerts, incidents and edges into a link to a trace UI:
    /// an http(s) URL with `{trace_id}` (percent-encoded in), e.g.
    /// `https://jaeger.example/trace/{trace_id}`. None: trace ids are plain text.
    pub trace_url_template: Option<String>,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("addr", &self.addr)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("public_url", &self.public_url)
            .field("sse_keep_alive", &self.sse_keep_alive)
            .field("sse_buffer", &self.sse_buffer)
            .field("sink_max_pending", &self.sink_max_pending)
            .field("metrics_max_edges", &self.metrics_max_edges)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("metrics_public", &self.metrics_public)
            .field("trace_url_template", &self.trace_url_template)
            .finish()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            addr: DEFAULT_API_ADDR,
            api_token: None,
            insecure_no_auth: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            public_url: None,
            sse_keep_alive: DEFAULT_SSE_KEEP_ALIVE,
            sse_buffer: DEFAULT_SSE_BUFFER,
            sink_max_pending: DEFAULT_SINK_MAX_PENDING,
            metrics_max_edges: DEFAULT_METRICS_MAX_EDGES,
            allowed_hosts: Vec::new(),
            metrics_public: false,
            trace_url_template: None,
        }
    }
}

impl ApiConfig {
    pub fn validate(&self) -> Result<(), ApiError> {
        check_bind(self.addr, self)?;
        if self
            .api_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ApiError::Config("api_token must not be empty".into()));
        }
        if self.max_body_bytes == 0 {
            return Err(ApiError::Config("max_body_bytes must be positive".into()));
        }
        if self.sse_buffer == 0 || self.sink_max_pending == 0 {
            return Err(ApiError::Config(
                "sse_buffer and sink_max_pending must be positive".into(),
            ));
        }
        if self.sse_keep_alive.is_zero() {
            return Err(ApiError::Config("sse_keep_alive must be positive".into()));
        }
        if let Some(url) = &self.public_url {
            check_http_url(url).map_err(|e| ApiError::Config(format!("public_url: {e}")))?;
        }
        if let Some(template) = &self.trace_url_template {
            crate::trace_link::validate_template(template)
                .map_err(|e| ApiError::Config(format!("trace_url_template: {e}")))?;
        }
        for entry in &self.allowed_hosts {
            crate::http::HostEntry::parse(entry)
                .map_err(|e| ApiError::Config(format!("allowed_hosts: {e}")))?;
        }
        Ok(())
    }

    /// Dashboard base URL without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.addr),
        }
    }
}

/// Refuses to expose an unauthenticated API beyond this machine.
pub(crate) fn check_bind(addr: SocketAddr, config: &ApiConfig) -> Result<(), ApiError> {
    if !addr.ip().is_loopback() && config.api_token.is_none() && !config.insecure_no_auth {
        return Err(ApiError::Config(format!(
            "refusing to serve the API on non-loopback address {addr} without an api token \
             (set --api-token, or --insecure-no-auth to override)"
        )));
    }
    Ok(())
}

fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http(s) URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookKind {
    /// The Alert JSON, HMAC-signed.
    #[default]
    Generic,
    /// Slack incoming webhook (`text` + `blocks`).
    Slack,
    /// Prometheus Alertmanager `POST {url}/api/v2/alerts`.
    Alertmanager,
    /// Falcosidekick-compatible event.
    Falco,
}

impl WebhookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::Generic => "generic",
            WebhookKind::Slack => "slack",
            WebhookKind::Alertmanager => "alertmanager",
            WebhookKind::Falco => "falco",
        }
    }
}

/// One webhook destination (`[[webhooks]]` in the config file).
///
/// `url` and `secret` are credentials: `Debug` shows the URL redacted (scheme, host,
/// port and a digest) and never the secret; outbox rows, logs and the API name the hook
/// by `name` and [`WebhookConfig::target`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Stable name: outbox rows refer to it, so renaming orphans queued deliveries.
    pub name: String,
    pub kind: WebhookKind,
    /// Receiver URL; for `alertmanager` the Alertmanager base URL.
    pub url: String,
    /// HMAC-SHA256 key for `X-Eastwest-Signature-V1` (required for `generic`).
    pub secret: Option<String>,
    /// Also send the deprecated body-only `X-Eastwest-Signature` (removed next release);
    /// turn off once every receiver verifies `X-Eastwest-Signature-V1`.
    pub legacy_signature: bool,
    pub min_severity: Severity,
    /// Only these kinds; empty means all.
    pub kinds: Vec<AlertKind>,
    pub max_per_minute: u32,
    /// Tries before a delivery is dead-lettered.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: WebhookKind::Generic,
            url: String::new(),
            secret: None,
            legacy_signature: DEFAULT_WEBHOOK_LEGACY_SIGNATURE,
            min_severity: Severity::Info,
            kinds: Vec::new(),
            max_per_minute: DEFAULT_WEBHOOK_MAX_PER_MINUTE,
            max_attempts: DEFAULT_WEBHOOK_MAX_ATTEMPTS,
            timeout: DEFAULT_WEBHOOK_TIMEOUT,
            initial_backoff: DEFAULT_WEBHOOK_INITIAL_BACKOFF,
            max_backoff: DEFAULT_WEBHOOK_MAX_BACKOFF,
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.target())
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("legacy_signature", &self.legacy_signature)
            .field("min_severity", &self.min_severity)
            .field("kinds", &self.kinds)
            .field("max_per_minute", &self.max_per_minute)
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

impl WebhookConfig {
    /// The URL as it may be shown: `scheme://host[:port] (digest)`.
    pub fn target(&self) -> String {
        crate::webhook::redact::redacted_url(&self.url)
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        let fail = |msg: String| Err(ApiError::Config(format!("webhook {:?}: {msg}", self.name)));
        if self.name.is_empty() || self.name.len() > 64 {
            return fail("name must be 1..=64 characters".into());
        }
        // The URL is a credential: the message names what is wrong, never the URL.
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(_) => return fail("url must be an http(s) URL with a host".into()),
            Err(e) => return fail(format!("url is not a valid URL ({e})")),
        }
        if self.kind == WebhookKind::Generic && self.secret.as_deref().unwrap_or("").is_empty() {
            return fail("a generic webhook needs a secret to sign its deliveries".into());
        }
        if self.max_per_minute == 0 || self.max_attempts == 0 {
            return fail("max_per_minute and max_attempts must be positive".into());
        }
        if self.timeout.is_zero() || self.initial_backoff.is_zero() {
            return fail("timeout and initial_backoff must be positive".into());
        }
        if self.max_backoff < self.initial_backoff {
            return fail("max_backoff must be at least initial_backoff".into());
        }
        Ok(())
    }

    /// Whether this destination wants `kind` at `severity`.
    pub fn wants(&self, kind: AlertKind, severity: Severity) -> bool {
        severity >= self.min_severity && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }
}

pub(crate) fn validate_webhooks(webhooks: &[WebhookConfig]) -> Result<(), ApiError> {
    let mut names = HashSet::new();
    for w in webhooks {
        w.validate()?;
        if !names.insert(w.name.as_str()) {
            return Err(ApiError::Config(format!(
                "duplicate webhook name {:?}",
                w.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_loopback() {
        let c = ApiConfig::default();
        c.validate().unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:4320");
    }

    #[test]
    fn non_loopback_without_token_is_refused_unless_insecure() {
        let mut c = ApiConfig {
            addr: "0.0.0.0:4320".parse().unwrap(),
            ..Default::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("non-loopback"), "{err}");
        c.api_token = Some("s3cret".into());
        c.validate().unwrap();
        c.api_token = None;
        c.insecure_no_auth = true;
        c.validate().unwrap();
    }

    #[test]
    fn config_parses_from_toml_like_json_with_humantime() {
        let c: ApiConfig =
            serde_json::from_value(serde_json::json!({"sse_keep_alive": "3s"})).unwrap();
        assert_eq!(c.sse_keep_alive, Duration::from_secs(3));
        assert!(serde_json::from_value::<ApiConfig>(serde_json::json!({"bogus": 1})).is_err());
    }

    #[test]
    fn allowed_hosts_must_be_names_or_names_with_ports() {
        for good in [
            "eastwest.example.com",
            "eastwest:4320",
            "[fd00::1]:80",
            "10.0.0.5",
        ] {
            let c = ApiConfig {
                allowed_hosts: vec![good.into()],
                ..Default::default()
            };
            c.validate().unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "*",
            "*.example.com",
            "http://x.example",
            "x.example/path",
            "a@b",
        ] {
            let c = ApiConfig {
                allowed_hosts: vec![bad.into()],
                ..Default::default()
            };
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("allowed_hosts"), "{bad}: {err}");
        }
    }

    #[test]
    fn webhook_validation_and_filtering() {
        let w = WebhookConfig {
            name: "sec".into(),
            url: "https://hooks.example/x".into(),
            secret: Some("k".into()),
            min_severity: Severity::High,
            kinds: vec![AlertKind::Probing],
            ..Default::default()
        };
        w.validate().unwrap();
        assert!(w.wants(AlertKind::Probing, Severity::Critical));
        assert!(!w.wants(AlertKind::Probing, Severity::Medium));
        assert!(!w.wants(AlertKind::NewEdge, Severity::Critical));
        let unsigned = WebhookConfig {
            secret: None,
            ..w.clone()
        };
        assert!(unsigned.validate().is_err());
        assert!(validate_webhooks(&[w.clone(), w]).is_err());
    }

    #[test]
    fn the_api_token_never_shows_in_debug() {
        let c = ApiConfig {
            api_token: Some("s3cret-token".into()),
            ..Default::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret-token"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn webhook_url_and_secret_never_show_in_debug_or_errors() {
        let token = "T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX";
        let w = WebhookConfig {
            name: "slack".into(),
            kind: WebhookKind::Slack,
            url: format!("https://hooks.slack.com/services/{token}"),
            secret: Some("hunter2-secret".into()),
            ..Default::default()
        };
        let debug = format!("{w:?} {w:#?}");
        assert!(
            !debug.contains("XXXX") && !debug.contains("services"),
            "{debug}"
        );
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("https://hooks.slack.com ("), "{debug}");
        for url in [
            format!("hooks.slack.com/services/{token}"),
            format!("ftp://hooks.slack.com/services/{token}"),
            format!("https://[bad/services/{token}"),
        ] {
            let bad = WebhookConfig { url, ..w.clone() };
            let err = bad.validate().unwrap_err().to_string();
            assert!(!err.contains("XXXX"), "{err}");
            assert!(err.contains("url"), "{err}");
        }
    }
}
