//! The browser client, embedded in the binary: the page at `/`, its script and style under
//! `/static/`, and the client library at `/client/chat-client.js` (with its modules
//! `/client/wire.js` and `/client/presence.js`).

use axum::http::header;
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("../../static/index.html");
const APP_JS: &str = include_str!("../../static/app.js");
const STYLE_CSS: &str = include_str!("../../static/style.css");
const CLIENT_JS: &str = include_str!("../../static/chat-client.js");
const WIRE_JS: &str = include_str!("../../static/wire.js");
const PRESENCE_JS: &str = include_str!("../../static/presence.js");
const PRESENCE_VIEW_JS: &str = include_str!("../../static/presence-view.js");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

pub async fn client_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", CLIENT_JS)
}

pub async fn wire_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", WIRE_JS)
}

pub async fn presence_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", PRESENCE_JS)
}

pub async fn presence_view_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", PRESENCE_VIEW_JS)
}
