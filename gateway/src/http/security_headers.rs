//! Conservative security headers on every response: the page may only load its own script,
//! style and connections (`Content-Security-Policy`, no inline script, no framing by anyone:
//! `frame-ancestors 'none'`), responses are not content-sniffed, and no referrer leaves the
//! site. JSON and assets get them too; they cost nothing there.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

/// The policy of the page: everything from this origin only (`connect-src 'self'` includes
/// the same-origin WebSocket), nothing framed, no plugins, no `<base>` rewriting.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// Adds the headers a handler did not set itself.
pub async fn add(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
