//! How a process authenticates to NATS, and its TLS settings: user/password, token, NKey seed,
//! a `.creds` file (JWT + NKey), and `tls://` with a CA file and a client certificate. Secrets
//! come from environment variables (Kubernetes Secrets) or files, never from flags' defaults;
//! `--help` never shows their values.

use std::path::PathBuf;

use async_nats::ConnectOptions;
use clap::Args;

/// The `--help` heading of these settings.
const HEADING: &str = "NATS authentication and TLS";

/// NATS credentials and TLS (all optional: an open server needs none).
#[derive(Clone, Default, Args)]
pub struct NatsAuth {
    /// NATS user name (with NATS_PASSWORD).
    #[arg(long, env = "NATS_USER", help_heading = HEADING)]
    pub nats_user: Option<String>,
    /// NATS password (with NATS_USER).
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true, help_heading = HEADING)]
    pub nats_password: Option<String>,
    /// NATS authentication token.
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true, help_heading = HEADING)]
    pub nats_token: Option<String>,
    /// File holding an NKey seed (`SU...`).
    #[arg(long, env = "NATS_NKEY_FILE", help_heading = HEADING)]
    pub nats_nkey_file: Option<PathBuf>,
    /// `.creds` file (user JWT and NKey seed), as `nsc` writes it.
    #[arg(long, env = "NATS_CREDS_FILE", help_heading = HEADING)]
    pub nats_creds_file: Option<PathBuf>,
    /// PEM CA certificate(s) the server's certificate must chain to (implies TLS).
    #[arg(long, env = "NATS_CA_FILE", help_heading = HEADING)]
    pub nats_ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with NATS_CLIENT_KEY_FILE).
    #[arg(long, env = "NATS_CLIENT_CERT_FILE", help_heading = HEADING, requires = "nats_client_key_file")]
    pub nats_client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long, env = "NATS_CLIENT_KEY_FILE", help_heading = HEADING, requires = "nats_client_cert_file")]
    pub nats_client_key_file: Option<PathBuf>,
    /// Refuse a connection without TLS (also implied by a `tls://` URL or a CA file).
    #[arg(long, env = "NATS_TLS_REQUIRED", help_heading = HEADING)]
    pub nats_tls_required: bool,
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAuth")
            .field("user", &self.nats_user)
            .field("password", &self.nats_password.as_ref().map(|_| "***"))
            .field("token", &self.nats_token.as_ref().map(|_| "***"))
            .field("nkey_file", &self.nats_nkey_file)
            .field("creds_file", &self.nats_creds_file)
            .field("ca_file", &self.nats_ca_file)
            .field("client_cert_file", &self.nats_client_cert_file)
            .field("tls_required", &self.nats_tls_required)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NatsAuthError {
    #[error("NATS_USER and NATS_PASSWORD go together")]
    HalfUserPassword,
    #[error("set only one of NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_FILE, NATS_CREDS_FILE")]
    SeveralMethods,
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

impl NatsAuth {
    /// How many credential methods are configured.
    fn methods(&self) -> usize {
        [
            self.nats_user.is_some() || self.nats_password.is_some(),
            self.nats_token.is_some(),
            self.nats_nkey_file.is_some(),
            self.nats_creds_file.is_some(),
        ]
        .into_iter()
        .filter(|m| *m)
        .count()
    }

    /// Adds the credentials and TLS settings to `options`.
    pub async fn apply(&self, options: ConnectOptions) -> Result<ConnectOptions, NatsAuthError> {
        if self.methods() > 1 {
            return Err(NatsAuthError::SeveralMethods);
        }
        let file_error = |path: &PathBuf| {
            let path = path.display().to_string();
            move |source| NatsAuthError::File { path, source }
        };
        let mut options = match (&self.nats_user, &self.nats_password) {
            (Some(user), Some(password)) => {
                options.user_and_password(user.clone(), password.clone())
            }
            (None, None) => options,
            _ => return Err(NatsAuthError::HalfUserPassword),
        };
        if let Some(token) = &self.nats_token {
            options = options.token(token.clone());
        }
        if let Some(path) = &self.nats_nkey_file {
            let seed = std::fs::read_to_string(path).map_err(file_error(path))?;
            options = options.nkey(seed.trim().to_owned());
        }
        if let Some(path) = &self.nats_creds_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(file_error(path))?;
        }
        if let Some(path) = &self.nats_ca_file {
            options = options
                .add_root_certificates(path.clone())
                .require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.nats_client_cert_file, &self.nats_client_key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.nats_tls_required {
            options = options.require_tls(true);
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn methods_are_checked() {
        let half = NatsAuth {
            nats_user: Some("u".into()),
            ..Default::default()
        };
        assert!(matches!(
            half.apply(ConnectOptions::new()).await,
            Err(NatsAuthError::HalfUserPassword)
        ));
        let two = NatsAuth {
            nats_token: Some("t".into()),
            nats_creds_file: Some("/x.creds".into()),
            ..Default::default()
        };
        assert!(matches!(
            two.apply(ConnectOptions::new()).await,
            Err(NatsAuthError::SeveralMethods)
        ));
        let missing = NatsAuth {
            nats_nkey_file: Some("/no/such/seed".into()),
            ..Default::default()
        };
        assert!(matches!(
            missing.apply(ConnectOptions::new()).await,
            Err(NatsAuthError::File { .. })
        ));
        let secret = NatsAuth {
            nats_password: Some("hunter2".into()),
            nats_user: Some("u".into()),
            ..Default::default()
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
