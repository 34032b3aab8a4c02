//! The whole-process config: one TOML document composed of each crate's own config
//! section, then flags, then `EASTWEST_*` environment variables on top.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::cli::ServeArgs;

pub const DEFAULT_DATA_DIR: &str = "./eastwest-data";
pub const DEFAULT_ALLOWED_LATENESS: Duration = Duration::from_secs(2);
pub const DEFAULT_IDLE_ADVANCE: Duration = Duration::from_secs(3);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
    pub storage: crate::storage::StorageConfig,
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

/// How the pipeline turns event time into closed windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Watermark = max event time seen − this.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// After this much wall time without input the watermark catches up with the
    /// newest event time, so the last window closes.
    #[serde(with = "humantime_serde")]
    pub idle_advance: Duration,
    /// How long shutdown may take to drain, flush and deliver before giving up.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
            idle_advance: DEFAULT_IDLE_ADVANCE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl EastwestConfig {
    pub fn from_toml(text: &str, origin: &Path) -> anyhow::Result<Self> {
        toml::from_str(text).with_context(|| format!("invalid config file {}", origin.display()))
    }

    /// File, then flags, then environment; validated.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Self> {
        let env_config = std::env::var_os("EASTWEST_CONFIG").map(PathBuf::from);
        let mut config = match env_config.as_ref().or(args.config.as_ref()) {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                Self::from_toml(&text, path)?
            }
            None => Self::default(),
        };
        config.apply_flags(args);
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    fn apply_flags(&mut self, args: &ServeArgs) {
        if let Some(a) = args.otlp_grpc {
            self.otlp.grpc_addr = a;
        }
        if let Some(a) = args.otlp_http {
            self.otlp.http_addr = a;
        }
        if let Some(a) = args.api {
            self.api.addr = a;
        }
        if let Some(d) = &args.data_dir {
            self.data_dir = d.clone();
        }
        if let Some(p) = args.learning_period {
            self.baseline.learning_period = p;
        }
        if let Some(t) = &args.api_token {
            self.api.api_token = Some(t.clone());
        }
        if args.insecure_no_auth {
            self.api.insecure_no_auth = true;
        }
    }

    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn addr(name: &str, v: String) -> anyhow::Result<std::net::SocketAddr> {
            v.parse()
                .with_context(|| format!("{name}: not a socket address: {v:?}"))
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
            self.baseline.learning_period = humantime::parse_duration(&v)
                .with_context(|| format!("EASTWEST_LEARNING_PERIOD: not a duration: {v:?}"))?;
        }
        if let Some(v) = get("EASTWEST_API_TOKEN").filter(|v| !v.is_empty()) {
            self.api.api_token = Some(v);
        }
        if let Some(v) = get("EASTWEST_INSECURE_NO_AUTH") {
            self.api.insecure_no_auth = matches!(v.as_str(), "1" | "true" | "yes");
        }
        Ok(())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            bail!("data_dir must not be empty");
        }
        self.otlp.validate().context("[otlp]")?;
        self.normalizer.validate().context("[normalizer]")?;
        self.baseline.validate().context("[baseline]")?;
        self.detector.validate().context("[detector]")?;
        self.api.validate().context("[api]")?;
        self.storage.validate().context("[storage]")?;
        for w in &self.webhooks {
            w.validate()
                .with_context(|| format!("[[webhooks]] {}", w.name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_in_repo_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("eastwest.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = EastwestConfig::from_toml(&text, &path).unwrap();
        config.validate().unwrap();
        assert_eq!(
            config.baseline.learning_period,
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_file_name() {
        let err = EastwestConfig::from_toml("nonsense = 1", Path::new("x.toml")).unwrap_err();
        assert!(format!("{err:#}").contains("x.toml"), "{err:#}");
    }

    #[test]
    fn env_overrides_flags_which_override_file() {
        let mut c = EastwestConfig::from_toml("data_dir = \"/from-file\"", Path::new("f")).unwrap();
        let args = ServeArgs {
            data_dir: Some("/from-flag".into()),
            ..Default::default()
        };
        c.apply_flags(&args);
        assert_eq!(c.data_dir, PathBuf::from("/from-flag"));
        c.apply_env(|k| (k == "EASTWEST_DATA_DIR").then(|| "/from-env".to_string()))
            .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from-env"));
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
