//! Loading the process config: the TOML file, then command-line flags, then `EASTWEST_*`
//! environment variables on top; validated by the runtime.

use std::path::PathBuf;

use anyhow::Context;
pub use eastwest_runtime::{DEFAULT_DATA_DIR, EastwestConfig};

use crate::cli::ServeArgs;

/// File, then flags, then environment; validated.
pub fn load(args: &ServeArgs) -> anyhow::Result<EastwestConfig> {
    let env_config = std::env::var_os("EASTWEST_CONFIG").map(PathBuf::from);
    let mut config = match env_config.as_ref().or(args.config.as_ref()) {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            EastwestConfig::from_toml(&text, path)?
        }
        None => EastwestConfig::default(),
    };
    apply_flags(&mut config, args);
    config.apply_env(|k| std::env::var(k).ok())?;
    config.validate()?;
    Ok(config)
}

fn apply_flags(config: &mut EastwestConfig, args: &ServeArgs) {
    if let Some(a) = args.otlp_grpc {
        config.otlp.grpc_addr = a;
    }
    if let Some(a) = args.otlp_http {
        config.otlp.http_addr = a;
    }
    if let Some(a) = args.api {
        config.api.addr = a;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(p) = args.learning_period {
        config.baseline.learning_period = p;
    }
    if let Some(t) = &args.api_token {
        config.api.api_token = Some(t.clone());
    }
    if args.insecure_no_auth {
        config.api.insecure_no_auth = true;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn env_overrides_flags_which_override_file() {
        let mut c = EastwestConfig::from_toml("data_dir = \"/from-file\"", Path::new("f")).unwrap();
        let args = ServeArgs {
            data_dir: Some("/from-flag".into()),
            ..Default::default()
        };
        apply_flags(&mut c, &args);
        assert_eq!(c.data_dir, PathBuf::from("/from-flag"));
        c.apply_env(|k| (k == "EASTWEST_DATA_DIR").then(|| "/from-env".to_string()))
            .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from-env"));
    }
}
