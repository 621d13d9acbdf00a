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
    /// When set, tokens must carry this `iss`.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// When set, tokens must carry this `aud` (or a list containing it).
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Cookie that carries the token.
    #[arg(long, env = "JWT_COOKIE_NAME", default_value = "slimy_admin_token")]
    pub jwt_cookie_name: String,
}

/// The shortest HS256 secret accepted: 256 bits, the size of the hash (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no JWT key: set JWT_SECRET or JWT_PUBLIC_KEY_FILE")]
    NoJwtKey,
    #[error("JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)")]
    WeakSecret,
    #[error("{0}")]
    Auth(#[from] AuthError),
}

impl AuthConfig {
    /// Builds the verifier; `fallback_secret` is used when neither key is configured (embedded
    /// mode generates one).
    pub fn verifier(&self, fallback_secret: Option<&str>) -> Result<JwtVerifier, ConfigError> {
        Ok(self.key(fallback_secret)?.expect_claims(
            self.jwt_issuer.as_deref().filter(|s| !s.is_empty()),
            self.jwt_audience.as_deref().filter(|s| !s.is_empty()),
        ))
    }

    /// Whether an RS256/ES256 public key is configured (verification only, no minting).
    pub fn uses_public_key(&self) -> bool {
        self.jwt_public_key_file.is_some()
    }

    fn key(&self, fallback_secret: Option<&str>) -> Result<JwtVerifier, ConfigError> {
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
        if secret.len() < MIN_SECRET_BYTES {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        auth: AuthConfig,
    }

    fn auth(args: &[&str]) -> AuthConfig {
        Cli::parse_from(std::iter::once("x").chain(args.iter().copied())).auth
    }

    #[test]
    fn hs256_secrets_shorter_than_32_bytes_are_refused() {
        let table = [
            ("", false),
            ("sixteen-bytes-16", false),
            ("0123456789abcdef0123456789abcde", false),
            ("0123456789abcdef0123456789abcdef", true),
        ];
        for (secret, ok) in table {
            let got = auth(&["--jwt-secret", secret]).verifier(None);
            assert_eq!(got.is_ok(), ok, "{secret:?}");
        }
        assert!(matches!(
            auth(&[]).verifier(Some("short")),
            Err(ConfigError::WeakSecret)
        ));
        assert!(auth(&[]).verifier(Some(&random_secret())).is_ok());
    }
}
