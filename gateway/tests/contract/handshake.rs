//! Handshake refusals and `hello`.

use chat_shared::protocol::PROTOCOL_VERSION;
use chat_shared::protocol::identity::{Role, UserInfo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::support::client::{Client, Connect};
use crate::support::{ALLOWED_ORIGIN, Deployment, SECRET, Scope, user};

async fn refusal(d: &impl Deployment, token: Option<&str>, origin: Option<&str>) -> (u16, String) {
    let how = Connect {
        token,
        origin,
        ..Connect::default()
    };
    match Client::open(&d.gateway(0), how).await {
        Ok(_) => panic!("handshake should be refused"),
        Err(r) => (r.status, r.error),
    }
}

fn raw_token(claims: serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("encode")
}

fn now() -> u64 {
    chat_shared::auth::unix_now()
}

pub async fn refusals(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let unauthorized = (401, "not_authorized".to_owned());
    assert_eq!(refusal(d, None, None).await, unauthorized, "missing token");
    let forged = raw_token(
        serde_json::json!({"sub": ann.info.id, "exp": now() + 60}),
        Algorithm::HS256,
        b"another-secret-0123456789",
    );
    assert_eq!(
        refusal(d, Some(&forged), None).await,
        unauthorized,
        "bad signature"
    );
    let expired = raw_token(
        serde_json::json!({"sub": ann.info.id, "exp": now() - 600}),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    assert_eq!(
        refusal(d, Some(&expired), None).await,
        unauthorized,
        "expired"
    );
    let no_exp = raw_token(
        serde_json::json!({"sub": ann.info.id}),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    assert_eq!(
        refusal(d, Some(&no_exp), None).await,
        unauthorized,
        "no exp"
    );
    let wrong_alg = raw_token(
        serde_json::json!({"sub": ann.info.id, "exp": now() + 60}),
        Algorithm::HS512,
        SECRET.as_bytes(),
    );
    assert_eq!(
        refusal(d, Some(&wrong_alg), None).await,
        unauthorized,
        "HS512 while HS256 is pinned"
    );
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(format!(r#"{{"sub":"{}","exp":{}}}"#, ann.info.id, now() + 60).as_bytes())
    );
    assert_eq!(
        refusal(d, Some(&alg_none), None).await,
        unauthorized,
        "alg none"
    );
    assert_eq!(
        refusal(d, Some("not-a-jwt"), None).await,
        unauthorized,
        "garbage"
    );
    assert_eq!(
        refusal(d, Some(&ann.token), Some("http://evil.test")).await,
        (403, "origin_not_allowed".to_owned())
    );
    let lonely = user(d, &s.user_id("lonely"), Role::Member, &[]).await;
    assert_eq!(
        refusal(d, Some(&lonely.token), None).await,
        (403, "no_guild_context".to_owned())
    );
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub async fn accepted_ways_and_hello(d: &impl Deployment) {
    let s = Scope::new();
    let (g1, g2) = (s.guild("g1"), s.guild("g2"));
    let ann = user(d, &s.user_id("ann"), Role::Club, &[&g1, &g2]).await;
    let how = Connect {
        cookie: true,
        origin: Some(ALLOWED_ORIGIN),
        ..Connect::default()
    };
    let client = ann
        .try_connect(d, 0, how)
        .await
        .expect("cookie + allowed origin");
    let hello = &client.hello;
    assert_eq!(hello.protocol, PROTOCOL_VERSION);
    assert!(!hello.connection_id.is_empty());
    assert_eq!(
        hello.user,
        UserInfo::new(ann.info.id.clone(), ann.info.id.clone(), Role::Club)
    );
    assert_eq!(hello.user.color, "#f59e0b");
    assert_eq!(hello.guilds, vec![g1.clone(), g2.clone()]);
    assert!(!hello.admin);
    assert!(hello.heartbeat_ms > 0);
    assert_eq!(hello.max_text_chars, 2000);
    let boss = user(d, &s.user_id("boss"), Role::Admin, &[]).await;
    let admin = boss.connect(d, 1).await;
    assert!(admin.hello.admin, "an admin needs no guild");
    assert_eq!(admin.hello.user.color, "#ef4444");
    let nested = serde_json::json!({
        "user": {"id": ann.info.id, "username": "ann", "globalName": "Ann A", "role": "club"},
        "exp": now() + 60,
    });
    let token = raw_token(nested, Algorithm::HS256, SECRET.as_bytes());
    let client = Client::open(
        &d.gateway(0),
        Connect {
            token: Some(&token),
            ..Connect::default()
        },
    )
    .await
    .expect("nested claims accepted");
    assert_eq!(client.hello.user.name, "Ann A");
}
