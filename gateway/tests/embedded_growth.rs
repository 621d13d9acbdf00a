//! Embedded mode's in-memory growth over real HTTP (issue #14, item 7): dev-login sessions are
//! bounded (the oldest beyond `DEV_LOGIN_MAX_SESSIONS` is deleted). The memory bus's bounds
//! (message-id claims, the bot job queue) are tested in `chat_shared::memory_bus`.

mod support;

use serde_json::json;
use support::{Deployment, Embedded, http};

async fn dev_login(base: &str, name: &str) -> (String, String) {
    let response = http()
        .post(format!("{base}/api/dev/login"))
        .json(&json!({"name": name, "role": "member", "guilds": ["g1"]}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    let id = body["user"]["id"].as_str().expect("id").to_owned();
    let token = body["token"].as_str().expect("token").to_owned();
    (id, token)
}

#[tokio::test]
async fn dev_login_sessions_are_bounded() {
    let d = Embedded::start_with(|c| c.dev_login_max_sessions = 5, true).await;
    let base = d.gateway(0);
    let mut logins = Vec::new();
    for i in 0..20 {
        logins.push(dev_login(&base, &format!("user {i}")).await);
    }
    let store = d.store();
    let mut kept = 0;
    for (id, _) in &logins {
        kept += usize::from(store.get(id).await.expect("store").is_some());
    }
    assert_eq!(kept, 5, "only the newest five dev-login sessions are kept");
    for (id, _) in &logins[15..] {
        assert!(
            store.get(id).await.expect("store").is_some(),
            "{id} is recent"
        );
    }
    // The oldest user's token still verifies, but its session (and guilds) is gone.
    let me: serde_json::Value = http()
        .get(format!("{base}/api/me"))
        .bearer_auth(&logins[0].1)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["guilds"], json!([]));
}
