//! Dev login on a gateway that cannot mint (RS256): nothing may be written before the mint.

use chat_shared::auth::JwtVerifier;
use gateway::{GatewayConfig, Node};
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::support::http;

#[tokio::test]
async fn a_gateway_that_cannot_mint_writes_no_session() {
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/trust/rs256-public.pem");
    let verifier = JwtVerifier::from_public_key_file(key, Algorithm::RS256).expect("public key");
    let mut config = GatewayConfig::for_tests();
    // `check()` refuses this at start; the handler must still be safe on its own.
    config.dev_login = Some(true);
    let node = Node::start(config, Node::embedded_deps(verifier))
        .await
        .expect("gateway starts");
    let answer = http()
        .post(format!("http://{}/api/dev/login", node.addr))
        .json(&json!({"id": "victim", "name": "Mallory", "role": "admin", "guilds": ["g-evil"]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 500);
    let stored = node.state.store.get("victim").await.expect("store answers");
    assert!(stored.is_none(), "the session was rewritten: {stored:?}");
    node.shutdown().await;
}

#[tokio::test]
async fn a_configured_secret_keeps_dev_login_off_unless_asked_for() {
    let mut config = GatewayConfig::for_tests();
    config.auth.jwt_secret = Some(crate::support::SECRET.to_owned());
    let verifier = JwtVerifier::hs256(crate::support::SECRET.as_bytes());
    let node = Node::start(config, Node::embedded_deps(verifier))
        .await
        .expect("gateway starts");
    let answer = http()
        .post(format!("http://{}/api/dev/login", node.addr))
        .json(&json!({"name": "Mallory", "role": "admin"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 404);
    node.shutdown().await;
}
