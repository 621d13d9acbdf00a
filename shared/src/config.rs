//! Settings shared by every binary, as clap argument groups: each is a flag and an environment
//! variable, shown in `--help`. Bad values fail at start with one clear line.

use clap::Args;
use jsonwebtoken::Algorithm;

use crate::auth::{AuthError, JwtVerifier};
use crate::telemetry::LogFormat;

/// Where the shared services are, and how to log.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// NATS server URL (distributed mode), e.g. nats://127.0.0.1:4222.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// Redis URL (distributed mode), e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// OTLP/HTTP endpoint for traces (protobuf, plain http, e.g. http://127.0.0.1:4318; spans go
    /// to its /v1/traces); tracing export is off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
}

/// How tokens are verified.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// HS256 secret (the default algorithm).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key file; switches verification to `--jwt-algorithm` (RS256 or ES256).
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<String>,
    /// Algorithm used with `--jwt-public-key-file`.
    #[arg(long, env = "JWT_ALGORITHM", default_value = "RS256", value_parser = ["RS256", "ES256"])]
    pub jwt_algorithm: String,
    /// Cookie that carries the token.
    #[arg(long, env = "JWT_COOKIE_NAME", default_value = "slimy_admin_token")]
    pub jwt_cookie_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no JWT key: set JWT_SECRET or JWT_PUBLIC_KEY_FILE")]
    NoJwtKey,
    #[error("JWT_SECRET must be at least 16 bytes")]
    WeakSecret,
    #[error("{0}")]
    Auth(#[from] AuthError),
}

impl AuthConfig {
    /// Builds the verifier; `fallback_secret` is used when neither key is configured (embedded
    /// mode generates one).
    pub fn verifier(&self, fallback_secret: Option<&str>) -> Result<JwtVerifier, ConfigError> {
        if let Some(path) = &self.jwt_public_key_file {
            let alg = if self.jwt_algorithm == "ES256" {
                Algorithm::ES256
            } else {
                Algorithm::RS256
            };
            return Ok(JwtVerifier::from_public_key_file(path, alg)?);
        }
        let secret = self
            .jwt_secret
            .as_deref()
            .or(fallback_secret)
            .ok_or(ConfigError::NoJwtKey)?;
        if secret.len() < 16 {
            return Err(ConfigError::WeakSecret);
        }
        Ok(JwtVerifier::hs256(secret.as_bytes()))
    }
}

/// Limits on what a client may send, shared by gateway and router.
#[derive(Debug, Clone, Copy, Args)]
pub struct LimitsConfig {
    /// Largest text, in characters (after trimming).
    #[arg(long, env = "MAX_TEXT_CHARS", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_text_chars: u32,
}

/// A random secret for embedded mode when none is configured.
pub fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
