//! The whole-process config: one TOML document composed of each crate's own config
//! section. The binary layers flags on top; `EASTWEST_*` environment variables go last.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::RuntimeError;
use crate::storage::StorageConfig;

pub const DEFAULT_DATA_DIR: &str = "./eastwest-data";
pub const DEFAULT_ALLOWED_LATENESS: Duration = Duration::from_secs(2);
pub const DEFAULT_IDLE_ADVANCE: Duration = Duration::from_secs(3);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Records stamped further ahead of the wall clock than this are refused.
pub const DEFAULT_FUTURE_SKEW: Duration = Duration::from_secs(5 * 60);
/// Records older than this (by the wall clock) are refused.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EastwestConfig {
    pub data_dir: PathBuf,
    pub otlp: eastwest_collector::ReceiverConfig,
    pub normalizer: eastwest_collector::NormalizerConfig,
    pub baseline: eastwest_baseline::BaselineConfig,
    pub detector: eastwest_detector::DetectorConfig,
    pub api: eastwest_api::ApiConfig,
    pub pipeline: PipelineConfig,
    pub storage: StorageConfig,
    pub webhooks: Vec<eastwest_api::WebhookConfig>,
}

impl Default for EastwestConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            otlp: Default::default(),
            normalizer: Default::default(),
            baseline: Default::default(),
            detector: Default::default(),
            api: Default::default(),
            pipeline: Default::default(),
            storage: Default::default(),
            webhooks: Vec::new(),
        }
    }
}

/// How the pipeline turns event time into closed windows, and which event times it
/// believes at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Watermark = newest accepted event time − this: how far out of order records may
    /// arrive (across requests, streams and clients) and still be judged exactly as if
    /// they had arrived in order.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// After this much wall time without input the watermark moves on with the wall
    /// clock, so pending pairs expire and the last window closes.
    #[serde(with = "humantime_serde")]
    pub idle_advance: Duration,
    /// How long shutdown may take to drain, flush and deliver before giving up.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A span or log record stamped more than this ahead of the wall clock is refused
    /// (`partial_success`, counted); the watermark never passes wall clock + this.
    #[serde(with = "humantime_serde")]
    pub future_skew: Duration,
    /// A span or log record older than this by the wall clock is refused.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
            idle_advance: DEFAULT_IDLE_ADVANCE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            future_skew: DEFAULT_FUTURE_SKEW,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

impl PipelineConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.idle_advance.is_zero() || self.shutdown_grace.is_zero() {
            return Err("idle_advance and shutdown_grace must be greater than zero".into());
        }
        if self.max_age.is_zero() {
            return Err("max_age must be greater than zero".into());
        }
        Ok(())
    }

    /// The acceptance window receivers apply to every record.
    pub fn time_window(&self) -> eastwest_collector::TimeWindow {
        eastwest_collector::TimeWindow {
            future_skew: self.future_skew,
            max_age: self.max_age,
        }
    }
}

fn invalid(section: &str, reason: impl ToString) -> RuntimeError {
    RuntimeError::Config {
        section: section.to_string(),
        reason: reason.to_string(),
    }
}

impl EastwestConfig {
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, RuntimeError> {
        toml::from_str(text).map_err(|source| RuntimeError::ConfigFile {
            path: origin.to_path_buf(),
            source,
        })
    }

    /// Applies `EASTWEST_*` variables (read through `get`).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), RuntimeError> {
        fn addr(name: &str, v: String) -> Result<std::net::SocketAddr, RuntimeError> {
            v.parse()
                .map_err(|_| invalid(name, format!("not a socket address: {v:?}")))
        }
        if let Some(v) = get("EASTWEST_OTLP_GRPC") {
            self.otlp.grpc_addr = addr("EASTWEST_OTLP_GRPC", v)?;
        }
        if let Some(v) = get("EASTWEST_OTLP_HTTP") {
            self.otlp.http_addr = addr("EASTWEST_OTLP_HTTP", v)?;
        }
        if let Some(v) = get("EASTWEST_API") {
            self.api.addr = addr("EASTWEST_API", v)?;
        }
        if let Some(v) = get("EASTWEST_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("EASTWEST_LEARNING_PERIOD") {
            self.baseline.learning_period = humantime::parse_duration(&v).map_err(|_| {
                invalid("EASTWEST_LEARNING_PERIOD", format!("not a duration: {v:?}"))
            })?;
        }
        if let Some(v) = get("EASTWEST_API_TOKEN").filter(|v| !v.is_empty()) {
            self.api.api_token = Some(v);
        }
        if let Some(v) = get("EASTWEST_INSECURE_NO_AUTH") {
            self.api.insecure_no_auth = matches!(v.as_str(), "1" | "true" | "yes");
        }
        // In a cluster the Service name is only known at deploy time: settable from the
        // manifest's environment, comma-separated.
        if let Some(v) = get("EASTWEST_API_ALLOWED_HOSTS") {
            self.api.allowed_hosts = v
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = get("EASTWEST_METRICS_PUBLIC") {
            self.api.metrics_public = matches!(v.as_str(), "1" | "true" | "yes");
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), RuntimeError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        self.otlp.validate().map_err(|e| invalid("[otlp]", e))?;
        self.normalizer
            .validate()
            .map_err(|e| invalid("[normalizer]", e))?;
        self.baseline
            .validate()
            .map_err(|e| invalid("[baseline]", e))?;
        self.detector
            .validate()
            .map_err(|e| invalid("[detector]", e))?;
        self.api.validate().map_err(|e| invalid("[api]", e))?;
        self.pipeline
            .validate()
            .map_err(|e| invalid("[pipeline]", e))?;
        self.storage
            .validate()
            .map_err(|e| invalid("[storage]", e))?;
        for w in &self.webhooks {
            w.validate()
                .map_err(|e| invalid(&format!("[[webhooks]] {}", w.name), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../eastwest.example.toml")
    }

    #[test]
    fn example_config_in_repo_parses_and_validates() {
        let path = example_path();
        let text = std::fs::read_to_string(&path).unwrap();
        let config = EastwestConfig::from_toml(&text, &path).unwrap();
        config.validate().unwrap();
        assert_eq!(
            config.baseline.learning_period,
            Duration::from_secs(24 * 3600)
        );
    }

    /// Every key of every section (webhooks aside: a list with no default entry) is in
    /// the example, so the example is the full reference.
    #[test]
    fn example_config_shows_every_key() {
        let text = std::fs::read_to_string(example_path()).unwrap();
        let defaults = toml::Value::try_from(EastwestConfig::default()).unwrap();
        let mut missing = Vec::new();
        let mut section = String::new();
        let lines: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
        let mut shown = std::collections::HashSet::new();
        for line in &lines {
            if let Some(s) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
                // An array of tables shows its own key.
                shown.insert(s.to_string());
                section = s.to_string();
            } else if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_string();
            } else if let Some((k, _)) = line.split_once('=')
                && !line.starts_with('#')
            {
                shown.insert(format!("{section}.{}", k.trim()));
            }
        }
        for (key, value) in defaults.as_table().unwrap() {
            match value {
                toml::Value::Table(t) => {
                    for k in t.keys() {
                        if !shown.contains(&format!("{key}.{k}")) {
                            missing.push(format!("[{key}] {k}"));
                        }
                    }
                }
                toml::Value::Array(_) => {}
                _ if !shown.contains(&format!(".{key}")) => missing.push(key.clone()),
                _ => {}
            }
        }
        assert!(
            missing.is_empty(),
            "eastwest.example.toml lacks: {missing:?}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_file_name() {
        let err = EastwestConfig::from_toml("nonsense = 1", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("x.toml"), "{err}");
    }

    #[test]
    fn env_overrides_the_file() {
        let mut c = EastwestConfig::from_toml("data_dir = \"/from-file\"", Path::new("f")).unwrap();
        c.apply_env(|k| (k == "EASTWEST_DATA_DIR").then(|| "/from-env".to_string()))
            .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from-env"));
    }

    #[test]
    fn allowed_hosts_and_public_metrics_come_from_the_environment() {
        let mut c = EastwestConfig::default();
        c.apply_env(|k| match k {
            "EASTWEST_API_ALLOWED_HOSTS" => Some(" eastwest.mesh.svc, eastwest:8080 ,".into()),
            "EASTWEST_METRICS_PUBLIC" => Some("true".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.api.allowed_hosts, ["eastwest.mesh.svc", "eastwest:8080"]);
        assert!(c.api.metrics_public);
    }

    #[test]
    fn bad_env_value_is_a_clear_error() {
        let mut c = EastwestConfig::default();
        let err = c
            .apply_env(|k| (k == "EASTWEST_API").then(|| "nope".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("EASTWEST_API"));
    }
}
