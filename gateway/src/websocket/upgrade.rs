//! The WebSocket opening handshake (RFC 6455 §4.2) as an axum extractor: the checks, order and
//! refusals of axum's `WebSocketUpgrade` (`Connection` matched by token, where axum matches a
//! substring), but the callback
//! gets the tokio-tungstenite stream itself (so data frames can be written without
//! tungstenite's buffer, see [`super::WebSocket`]), and once it runs the connection's task
//! holds only the callback's future: nothing of the handshake (axum's keeps its config,
//! protocol and callback for the connection's whole life, ~160 bytes per connection).

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::OptionFuture;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocketConfig};

/// An open server WebSocket over the upgraded HTTP/1.1 connection.
pub type Stream = WebSocketStream<TokioIo<Upgraded>>;

/// A request that asks for a WebSocket, checked; [`Upgrade::on_upgrade`] answers it.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket upgrade (axum's statuses and texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRejection {
    #[error("Request method must be `GET`")]
    MethodNotGet,
    #[error("Connection header did not include 'upgrade'")]
    ConnectionHeader,
    #[error("`Upgrade` header did not include 'websocket'")]
    UpgradeHeader,
    #[error("`Sec-WebSocket-Key` header missing")]
    KeyMissing,
    #[error("`Sec-WebSocket-Version` header did not include '13'")]
    Version,
    #[error("WebSocket request couldn't be upgraded since no upgrade state was present")]
    NotUpgradable,
}

impl UpgradeRejection {
    fn status(self) -> StatusCode {
        match self {
            UpgradeRejection::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            UpgradeRejection::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        (self.status(), self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let key = check(parts.version, &parts.method, &parts.headers)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeRejection::NotUpgradable)?;
        Ok(Upgrade { key, on_upgrade })
    }
}

/// The handshake's header checks, no I/O: the client's key when the request asks for a
/// WebSocket. Only HTTP/1.x upgrades (the gateway serves no HTTP/2).
fn check(
    version: Version,
    method: &Method,
    headers: &HeaderMap,
) -> Result<HeaderValue, UpgradeRejection> {
    if version > Version::HTTP_11 {
        return Err(UpgradeRejection::NotUpgradable);
    }
    if method != Method::GET {
        return Err(UpgradeRejection::MethodNotGet);
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err(UpgradeRejection::ConnectionHeader);
    }
    if !header_is(headers, header::UPGRADE, "websocket") {
        return Err(UpgradeRejection::UpgradeHeader);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(UpgradeRejection::KeyMissing)?;
    if !header_is(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err(UpgradeRejection::Version);
    }
    Ok(key.clone())
}

fn header_is(headers: &HeaderMap, name: header::HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// `Connection: keep-alive, Upgrade` names `upgrade` among its comma-separated tokens.
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

impl Upgrade {
    /// Answers `101 Switching Protocols` and, once hyper hands the connection over, runs
    /// `callback` with the WebSocket in a task of its own. A connection lost before that
    /// never runs it (its captures are dropped).
    pub fn on_upgrade<C, Fut>(self, config: WebSocketConfig, callback: C) -> Response
    where
        C: FnOnce(Stream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = match HeaderValue::try_from(derive_accept_key(self.key.as_bytes())) {
            Ok(accept) => accept,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
        let on_upgrade = self.on_upgrade;
        let opened = async move {
            match on_upgrade.await {
                Ok(upgraded) => Some(
                    WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await,
                ),
                Err(error) => {
                    tracing::debug!(%error, "the WebSocket upgrade did not complete");
                    None
                }
            }
        };
        // `then`: once the stream is open the task holds the callback's future alone (an
        // async block calling it would keep its captures beside it).
        tokio::spawn(opened.then(move |stream| OptionFuture::from(stream.map(callback))));
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    const GOOD: &[(&str, &str)] = &[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        GOOD.iter().filter(|(n, _)| *n != name).copied().collect()
    }

    fn with(name: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        let mut pairs = without(name);
        pairs.push((name, value));
        pairs
    }

    type Case = (
        Version,
        Method,
        Vec<(&'static str, &'static str)>,
        Result<(), UpgradeRejection>,
    );

    #[test]
    fn the_checks_refuse_like_axum_in_its_order() {
        use UpgradeRejection as R;
        let get = Method::GET;
        let cases: Vec<Case> = vec![
            (Version::HTTP_11, get.clone(), GOOD.to_vec(), Ok(())),
            (Version::HTTP_10, get.clone(), GOOD.to_vec(), Ok(())),
            (
                Version::HTTP_2,
                get.clone(),
                GOOD.to_vec(),
                Err(R::NotUpgradable),
            ),
            (
                Version::HTTP_11,
                Method::POST,
                GOOD.to_vec(),
                Err(R::MethodNotGet),
            ),
            (
                Version::HTTP_11,
                get.clone(),
                without("connection"),
                Err(R::ConnectionHeader),
            ),
            (
                Version::HTTP_11,
                get.clone(),
                with("connection", "upgraded"),
                Err(R::ConnectionHeader),
            ),
            (
                Version::HTTP_11,
                get.clone(),
                without("upgrade"),
                Err(R::UpgradeHeader),
            ),
            (
                Version::HTTP_11,
                get.clone(),
                with("upgrade", "h2c"),
                Err(R::UpgradeHeader),
            ),
            (
                Version::HTTP_11,
                get.clone(),
                without("sec-websocket-key"),
                Err(R::KeyMissing),
            ),
            (
                Version::HTTP_11,
                get.clone(),
                without("sec-websocket-version"),
                Err(R::Version),
            ),
            (
                Version::HTTP_11,
                get.clone(),
                with("sec-websocket-version", "8"),
                Err(R::Version),
            ),
            // The method is checked before the headers.
            (Version::HTTP_11, Method::PUT, vec![], Err(R::MethodNotGet)),
        ];
        for (version, method, pairs, expected) in cases {
            let got = check(version, &method, &headers(&pairs)).map(|_| ());
            assert_eq!(got, expected, "{version:?} {method} {pairs:?}");
        }
    }

    #[test]
    fn refusals_answer_axums_statuses() {
        assert_eq!(
            UpgradeRejection::MethodNotGet.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            UpgradeRejection::NotUpgradable.status(),
            StatusCode::UPGRADE_REQUIRED
        );
        assert_eq!(
            UpgradeRejection::KeyMissing.status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
