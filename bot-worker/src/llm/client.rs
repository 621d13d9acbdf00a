//! The HTTP side of the language-model backend: `POST {base}/chat/completions` with a bearer
//! key when one is set, over HTTP or HTTPS (rustls with the system's roots, Mozilla's when the
//! system has none). Failures are sorted for the job loop: connection failures, 429 and 5xx
//! are transient (with the server's `Retry-After` seconds), any other status is permanent, and
//! an unusable 2xx body becomes a fixed apology rather than an error.

use chat_shared::telemetry::error_chain;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::LlmSettings;
use super::wire::{ChatRequest, Message, UNREADABLE_ANSWER_TEXT, answer_text};
use crate::{BackendError, SetupError};

/// Largest response body read; a larger answer is unusable.
const MAX_BODY_BYTES: usize = 1 << 20;
/// The longest `Retry-After` taken at its word.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Characters of an error body kept for the log.
const ERROR_SNIPPET_CHARS: usize = 200;
const AGENT: &str = concat!("slimy-bot-worker/", env!("CARGO_PKG_VERSION"));

/// A chat-completions client for one server and model.
pub struct ChatCompletions {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: Uri,
    authorization: Option<HeaderValue>,
    model: String,
    max_tokens: u32,
    temperature: f32,
}

impl ChatCompletions {
    pub fn new(settings: &LlmSettings) -> Result<Self, SetupError> {
        let authorization = match settings.api_key.as_deref() {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| SetupError::BadApiKey)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(ChatCompletions {
            http: Client::builder(TokioExecutor::new()).build(https),
            endpoint: endpoint(&settings.base_url)?,
            authorization,
            model: settings.model.clone(),
            max_tokens: settings.max_tokens,
            temperature: settings.temperature,
        })
    }

    /// The model's answer to `messages`.
    #[tracing::instrument(name = "llm.chat_completion", skip_all,
        fields(model = %self.model, status = tracing::field::Empty))]
    pub async fn complete(&self, messages: &[Message]) -> Result<String, BackendError> {
        let response = self
            .http
            .request(self.request(messages)?)
            .await
            .map_err(|e| {
                BackendError::transient(format!(
                    "cannot reach the model server: {}",
                    error_chain(&e)
                ))
            })?;
        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        let retry_after = retry_after(response.headers());
        let body = read_body(response.into_body()).await;
        if !status.is_success() {
            return Err(failure(status, retry_after, &body));
        }
        let answer = match body {
            Body::Read(bytes) => answer_text(&bytes).map_err(|e| e.to_string()),
            Body::TooLarge => Err(format!("the answer is over {MAX_BODY_BYTES} bytes")),
            Body::Failed(reason) => {
                return Err(BackendError::transient(format!(
                    "reading the answer: {reason}"
                )));
            }
        };
        Ok(answer.unwrap_or_else(|reason| {
            tracing::warn!(%reason, "unusable answer from the model server");
            UNREADABLE_ANSWER_TEXT.to_owned()
        }))
    }

    fn request(&self, messages: &[Message]) -> Result<Request<Full<Bytes>>, BackendError> {
        let body = ChatRequest {
            model: &self.model,
            messages,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            stream: false,
        };
        let json = serde_json::to_vec(&body)
            .map_err(|e| BackendError::Permanent(format!("encoding the request: {e}")))?;
        let mut request = Request::post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, AGENT);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        request
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| BackendError::Permanent(format!("building the request: {e}")))
    }
}

/// TLS on ring with the system's roots, or Mozilla's when the system has none.
fn tls_config() -> Result<rustls::ClientConfig, SetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?;
    let config = match config.clone().with_native_roots() {
        Ok(native) => native,
        Err(error) => {
            tracing::info!(%error, "no system CA certificates; using Mozilla's roots");
            config.with_webpki_roots()
        }
    };
    Ok(config.with_no_client_auth())
}

/// `{base}/chat/completions` for an `http(s)://host[:port][/path]` base.
pub fn endpoint(base: &str) -> Result<Uri, SetupError> {
    let bad = || SetupError::BadBaseUrl(base.to_owned());
    let uri: Uri = base.trim().parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.authority().is_none() || uri.query().is_some() {
        return Err(bad());
    }
    format!("{}/chat/completions", base.trim().trim_end_matches('/'))
        .parse()
        .map_err(|_| bad())
}

/// What reading a response body gave.
enum Body {
    Read(Bytes),
    TooLarge,
    Failed(String),
}

async fn read_body(body: hyper::body::Incoming) -> Body {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Body::Read(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Body::TooLarge,
        Err(error) => Body::Failed(error.to_string()),
    }
}

/// The error for a non-2xx answer.
fn failure(status: StatusCode, retry_after: Option<Duration>, body: &Body) -> BackendError {
    let snippet = match body {
        Body::Read(bytes) => String::from_utf8_lossy(bytes)
            .chars()
            .take(ERROR_SNIPPET_CHARS)
            .collect(),
        _ => String::new(),
    };
    let reason = format!("the model server answered {status}: {}", snippet.trim());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        BackendError::Transient {
            reason,
            retry_after,
        }
    } else {
        BackendError::Permanent(reason)
    }
}

/// `Retry-After` given in seconds (an HTTP date is not used), at most [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let ok = |base: &str| endpoint(base).map(|u| u.to_string());
        assert_eq!(
            ok("http://127.0.0.1:11434/v1").unwrap(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        assert_eq!(
            ok("https://api.openai.com/v1/").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert!(endpoint("ftp://x/v1").is_err());
        assert!(endpoint("127.0.0.1:8080").is_err());
        assert!(endpoint("not a url").is_err());
    }

    #[test]
    fn retry_after_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("99999"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn statuses_are_sorted() {
        let body = Body::Read(Bytes::from_static(b"{\"error\":\"slow down\"}"));
        let wait = Some(Duration::from_secs(2));
        assert!(matches!(
            failure(StatusCode::TOO_MANY_REQUESTS, wait, &body),
            BackendError::Transient {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            failure(StatusCode::BAD_GATEWAY, None, &body),
            BackendError::Transient { .. }
        ));
        assert!(matches!(
            failure(StatusCode::UNAUTHORIZED, None, &body),
            BackendError::Permanent(_)
        ));
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, None, &Body::TooLarge),
            BackendError::Permanent(_)
        ));
    }
}
