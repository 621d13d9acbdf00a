//! `ALLOWED_ORIGINS` unset: same-origin only (cross-site WebSocket hijacking is refused).

use chat_shared::protocol::identity::Role;

use crate::support::client::Connect;
use crate::support::{Deployment, Embedded, Scope, user};

#[tokio::test]
async fn unset_allowed_origins_means_same_origin() {
    let d = Embedded::start_with(|c| c.allowed_origins.clear(), false).await;
    let s = Scope::new();
    let guild = s.guild("g");
    let alice = user(&d, &s.user_id("alice"), Role::Member, &[&guild]).await;
    let base = d.gateway(0);
    let refused = alice
        .try_connect(
            &d,
            0,
            Connect {
                origin: Some("https://evil.example"),
                ..Default::default()
            },
        )
        .await
        .err()
        .expect("a foreign origin is refused");
    assert_eq!(
        (refused.status, refused.error.as_str()),
        (403, "origin_not_allowed")
    );
    let same = base.clone();
    alice
        .try_connect(
            &d,
            0,
            Connect {
                origin: Some(&same),
                ..Default::default()
            },
        )
        .await
        .expect("the gateway's own origin connects");
    alice
        .try_connect(&d, 0, Connect::default())
        .await
        .expect("no Origin (not a browser) connects");
}

#[tokio::test]
async fn star_allows_any_origin() {
    let d = Embedded::start_with(|c| c.allowed_origins = vec!["*".to_owned()], false).await;
    let s = Scope::new();
    let guild = s.guild("g");
    let alice = user(&d, &s.user_id("alice"), Role::Member, &[&guild]).await;
    alice
        .try_connect(
            &d,
            0,
            Connect {
                origin: Some("https://elsewhere.example"),
                ..Default::default()
            },
        )
        .await
        .expect("`*` allows any origin");
}
