//! The HTTP client the OTLP exporter posts spans with: hyper (HTTP/1.1, plain `http://`
//! endpoints) on the process's tokio runtime. The SDK's batch processor exports from its own
//! thread and blocks on the export future, so each request is spawned onto the runtime and
//! awaited from there; a dedicated client keeps reqwest, tonic and TLS out of the build.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// Longest collector answer read back (the body only matters for partial-success details).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// OTLP/HTTP client on a tokio runtime.
#[derive(Debug, Clone)]
pub struct RuntimeHttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl RuntimeHttpClient {
    /// A client whose requests run on `runtime`, each bounded by `timeout`.
    pub fn new(runtime: tokio::runtime::Handle, timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        RuntimeHttpClient {
            client,
            runtime,
            timeout,
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let exchange = async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(Request::from_parts(parts, Full::new(body)))
                .await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES).collect().await?;
            Ok::<_, HttpError>(Response::from_parts(parts, body.to_bytes()))
        };
        let task = self
            .runtime
            .spawn(async move { tokio::time::timeout(timeout, exchange).await });
        match task.await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("OTLP export timed out".into()),
            Err(join) => Err(Box::new(join)),
        }
    }
}
