//! Which browser origins may open `/ws`: with `ALLOWED_ORIGINS` unset only the same origin (the
//! `Origin`'s host and port equal the request's `Host`), `*` any, otherwise the listed ones.
//! Requests without an `Origin` header (non-browser clients) always pass: cross-site WebSocket
//! hijacking needs a browser, and a browser always sends it.

use axum::http::{HeaderMap, header};

/// Whether the request's `Origin` (if any) may connect, given `ALLOWED_ORIGINS`.
pub fn request_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    origin_allowed(allowed, origin, host)
}

/// The rule on plain strings (see the module doc).
pub fn origin_allowed(allowed: &[String], origin: &str, host: Option<&str>) -> bool {
    let configured: Vec<&str> = allowed
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if configured.is_empty() {
        return host.is_some_and(|host| same_origin(origin, host));
    }
    let origin = origin.trim().trim_end_matches('/');
    configured
        .iter()
        .any(|o| *o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// `scheme://host[:port]` names the same host and port as the `Host` header.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.trim().split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let normalise = |authority: &str| {
        let authority = authority.trim().trim_end_matches('/').to_ascii_lowercase();
        match authority.strip_suffix(&format!(":{default_port}")) {
            Some(bare) => bare.to_owned(),
            None => authority,
        }
    };
    !authority.contains('/') && normalise(authority) == normalise(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_by_default_star_and_lists_when_configured() {
        let none: Vec<String> = vec![];
        let star = vec!["*".to_owned()];
        let list = vec![
            "https://chat.example".to_owned(),
            " http://b.test/ ".to_owned(),
        ];
        let table: [(&[String], &str, Option<&str>, bool); 16] = [
            (&none, "http://127.0.0.1:8080", Some("127.0.0.1:8080"), true),
            (&none, "http://LOCALHOST:8080", Some("localhost:8080"), true),
            (&none, "https://chat.example", Some("chat.example"), true),
            (
                &none,
                "https://chat.example:443",
                Some("chat.example"),
                true,
            ),
            (&none, "http://chat.example", Some("chat.example:80"), true),
            (&none, "https://evil.example", Some("chat.example"), false),
            (
                &none,
                "http://127.0.0.1:9999",
                Some("127.0.0.1:8080"),
                false,
            ),
            (
                &none,
                "https://chat.example",
                Some("chat.example:8443"),
                false,
            ),
            (&none, "null", Some("chat.example"), false),
            (&none, "file://chat.example", Some("chat.example"), false),
            (&none, "http://chat.example", None, false),
            (&star, "https://evil.example", Some("chat.example"), true),
            (&list, "https://chat.example/", Some("other"), true),
            (&list, "http://b.test", None, true),
            (&list, "https://evil.example", Some("evil.example"), false),
            (&list, "http://chat.example", Some("chat.example"), false),
        ];
        for (allowed, origin, host, ok) in table {
            assert_eq!(
                origin_allowed(allowed, origin, host),
                ok,
                "{allowed:?} {origin} {host:?}"
            );
        }
    }

    #[test]
    fn no_origin_passes_and_a_non_text_one_does_not() {
        let mut headers = HeaderMap::new();
        assert!(request_allowed(&[], &headers));
        let not_text =
            header::HeaderValue::from_bytes(b"http://\xffx").expect("obs-text is a value");
        headers.insert(header::ORIGIN, not_text);
        headers.insert(header::HOST, header::HeaderValue::from_static("x"));
        assert!(!request_allowed(&[], &headers));
    }
}
