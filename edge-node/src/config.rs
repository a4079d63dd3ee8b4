//! Node configuration: defaults, then `DIR/stayos.toml`, then `STAYOS_*` environment
//! variables (nested keys with `__`, e.g. `STAYOS_AUTH__SESSION_HOURS=8`). Unknown keys and
//! bad values are refused with an error that names the key and where it came from.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "stayos.toml";

/// Environment variables with the `STAYOS_` prefix that are not configuration keys.
const NOT_CONFIG_ENV: [&str; 2] = ["ADMIN_PASSWORD", "DATA_DIR"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    pub http: HttpConfig,
    pub rate_limit: RateLimitConfig,
    pub auth: AuthConfig,
    pub db: DbConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    /// Origins allowed to call the API from a browser context (the desktop app's webview).
    pub cors_allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client address; 0 turns limiting off.
    pub per_second: u32,
    /// Requests a client may make at once above the sustained rate.
    pub burst: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub access_token_minutes: u32,
    /// How long a login lasts (refresh tokens stop working after it).
    pub session_hours: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbConfig {
    /// Read-only connections (each on its own thread).
    pub readers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `edge_node=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            http: HttpConfig::default(),
            rate_limit: RateLimitConfig::default(),
            auth: AuthConfig::default(),
            db: DbConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            cors_allowed_origins: vec![
                "tauri://localhost".into(),
                "http://tauri.localhost".into(),
                "https://tauri.localhost".into(),
            ],
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { per_second: 50, burst: 200 }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { access_token_minutes: 15, session_hours: 12 }
    }
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig { readers: 4 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Json }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// figment's message names the key and where the value came from (file or variable).
    #[error("bad configuration: {0}")]
    Parse(String),
    #[error("bad configuration: `{key}` {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Config {
    /// Loads `DIR/stayos.toml` (if present) with `STAYOS_*` overrides.
    pub fn load(data_dir: &Path) -> Result<Config, ConfigError> {
        Self::extract(
            Figment::from(Serialized::defaults(Config::default()))
                .merge(Toml::file(data_dir.join(CONFIG_FILE))),
        )
    }

    /// `base` with the `STAYOS_*` overrides, as `load` applies them (the demo's settings,
    /// which have no file).
    pub fn with_env(base: Config) -> Result<Config, ConfigError> {
        Self::extract(Figment::from(Serialized::defaults(base)))
    }

    fn extract(figment: Figment) -> Result<Config, ConfigError> {
        let env = Env::prefixed("STAYOS_")
            .filter(|key| !NOT_CONFIG_ENV.iter().any(|k| key.as_str().eq_ignore_ascii_case(k)))
            .split("__");
        let config: Config =
            figment.merge(env).extract().map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the ranges serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| Err(ConfigError::Invalid { key, reason: reason.into() });
        if self.http.body_limit_bytes < 1024 {
            return invalid("http.body_limit_bytes", "must be at least 1024");
        }
        if !(1..=600).contains(&self.http.request_timeout_secs) {
            return invalid("http.request_timeout_secs", "must be between 1 and 600");
        }
        if let Some(bad) = self
            .http
            .cors_allowed_origins
            .iter()
            .find(|o| axum::http::HeaderValue::from_str(o).is_err() || !o.contains("://"))
        {
            return Err(ConfigError::Invalid {
                key: "http.cors_allowed_origins",
                reason: format!("has {bad:?}, which is not an origin like https://host:port"),
            });
        }
        if self.rate_limit.per_second > 0 && self.rate_limit.burst == 0 {
            return invalid(
                "rate_limit.burst",
                "must be at least 1 when rate_limit.per_second is set",
            );
        }
        if !(1..=60).contains(&self.auth.access_token_minutes) {
            return invalid("auth.access_token_minutes", "must be between 1 and 60");
        }
        if !(1..=24 * 90).contains(&self.auth.session_hours) {
            return invalid("auth.session_hours", "must be between 1 and 2160 (90 days)");
        }
        if !(1..=64).contains(&self.db.readers) {
            return invalid("db.readers", "must be between 1 and 64");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid(
                "log.level",
                "is not a log filter like `info` or `edge_node=debug,info`",
            );
        }
        Ok(())
    }

    /// The file `init` writes: every key with its default, commented.
    pub fn template() -> String {
        String::from(
            r#"# StayOS edge node configuration. Every key is optional; shown are the defaults.
# Environment variables override this file: STAYOS_LISTEN, STAYOS_AUTH__SESSION_HOURS, ...

# listen = "0.0.0.0:8443"

[http]
# body_limit_bytes = 1048576
# request_timeout_secs = 30
# cors_allowed_origins = ["tauri://localhost", "http://tauri.localhost", "https://tauri.localhost"]

[rate_limit]
# Requests per second per client address (0 = off), and the burst above that.
# per_second = 50
# burst = 200

[auth]
# access_token_minutes = 15
# session_hours = 12

[db]
# readers = 4

[log]
# level = "info"
# format = "json"   # or "pretty"
"#,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(CONFIG_FILE), toml).expect("write");
        Config::load(dir.path())
    }

    #[test]
    fn the_written_template_loads_as_the_defaults() {
        let config = load_with(&Config::template()).expect("template loads");
        assert_eq!(config.auth.access_token_minutes, 15);
        assert_eq!(config.listen, Config::default().listen);
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = load_with("[auth]\nsesion_hours = 3\n").unwrap_err().to_string();
        assert!(err.contains("sesion_hours"), "{err}");
    }

    #[test]
    fn a_mistyped_value_is_named_with_its_key() {
        let err = load_with("[auth]\nsession_hours = \"many\"\n").unwrap_err().to_string();
        assert!(err.contains("session_hours"), "{err}");
    }

    #[test]
    fn an_out_of_range_value_is_named() {
        let err = load_with("[auth]\naccess_token_minutes = 600\n").unwrap_err().to_string();
        assert!(err.contains("auth.access_token_minutes"), "{err}");
    }
}
