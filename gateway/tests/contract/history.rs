//! The HTTP API: `/api/me`, history pages (newest first, `before` paging, visibility),
//! posting over HTTP, the legacy history path, and bad query parameters.

use chat_shared::protocol::identity::Role;
use serde_json::{Value, json};

use crate::support::{Deployment, Scope, http, user};

async fn get(d: &impl Deployment, token: &str, path: &str) -> (u16, Value) {
    let response = http()
        .get(format!("{}{path}", d.gateway(0)))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn seqs(body: &Value) -> Vec<u64> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

pub async fn history_paging_and_visibility(d: &impl Deployment) {
    let s = Scope::new();
    let (g, other) = (s.guild("g"), s.guild("other"));
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let boss = user(d, &s.user_id("boss"), Role::Admin, &[&g]).await;
    let mut admin = boss.connect(d, 0).await;
    let mut public = Vec::new();
    let mut all = Vec::new();
    for i in 0..7 {
        let ack = if i % 3 == 1 {
            let r = admin
                .send(json!({"guildId": g, "text": format!("secret {i}"), "adminOnly": true}))
                .await;
            admin.answer(&r).await.expect("ack")
        } else {
            let ack = admin.post(&g, &format!("public {i}")).await.expect("ack");
            public.push(ack.seq);
            ack
        };
        all.push(ack.seq);
    }
    public.reverse();
    all.reverse();
    let (status, first) = get(d, &ann.token, &format!("/api/guilds/{g}/messages?limit=3")).await;
    assert_eq!(status, 200);
    assert_eq!(
        seqs(&first),
        public[..3].to_vec(),
        "newest first, no admin-only"
    );
    assert_eq!(first["hasMore"], json!(true));
    assert_eq!(
        first["nextBefore"],
        json!(public[2]),
        "the next page's before: its oldest seq"
    );
    assert_eq!(first["messages"][0]["message"]["guildId"], json!(g));
    let before = public[2];
    let (_, second) = get(
        d,
        &ann.token,
        &format!("/api/guilds/{g}/messages?limit=3&before={before}"),
    )
    .await;
    assert_eq!(seqs(&second), public[3..].to_vec());
    assert_eq!(second["hasMore"], json!(false));
    assert_eq!(second.get("nextBefore"), None, "no next page");
    let (_, everything) = get(
        d,
        &boss.token,
        &format!("/api/guilds/{g}/messages?limit=200"),
    )
    .await;
    assert_eq!(seqs(&everything), all, "admins see admin-only messages too");
    let (status, legacy) = get(d, &ann.token, &format!("/api/chat/{g}/history?limit=500")).await;
    assert_eq!(status, 200);
    assert_eq!(legacy["ok"], json!(true));
    assert_eq!(
        legacy["messages"].as_array().map(Vec::len),
        Some(public.len())
    );
    assert!(legacy["messages"][0]["messageId"].is_string());
    assert_eq!(
        get(d, &ann.token, &format!("/api/guilds/{other}/messages")).await,
        (403, json!({"error": "forbidden_guild"}))
    );
    for bad in ["limit=0", "limit=abc", "limit=201", "before=-1", "before=x"] {
        let got = get(d, &ann.token, &format!("/api/guilds/{g}/messages?{bad}")).await;
        assert_eq!(got, (400, json!({"error": "bad_request"})), "{bad}");
    }
    assert_eq!(
        get(d, "garbage", &format!("/api/guilds/{g}/messages"))
            .await
            .0,
        401
    );
}

pub async fn me_and_http_post(d: &impl Deployment) {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let (status, me) = get(d, &ann.token, "/api/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["id"], json!(ann.info.id));
    assert_eq!(me["guilds"], json!([g]));
    assert_eq!(me["admin"], json!(false));
    assert_eq!(get(d, "nope", "/api/me").await.0, 401);
    let mut b = bob.connect(d, 1).await;
    let post = |body: Value| {
        http()
            .post(format!("{}/api/guilds/{g}/messages", d.gateway(0)))
            .bearer_auth(&ann.token)
            .json(&body)
            .send()
    };
    let created = post(json!({"text": "over http", "messageId": s.user_id("h1")}))
        .await
        .expect("post");
    assert_eq!(created.status().as_u16(), 201);
    let body: Value = created.json().await.expect("json");
    assert_eq!(body["messageId"], json!(s.user_id("h1")));
    let seen = b.message().await;
    assert_eq!(Some(seen.seq), body["seq"].as_u64());
    let empty = post(json!({"text": " "})).await.expect("post");
    assert_eq!(empty.status().as_u16(), 400);
    assert_eq!(
        empty.json::<Value>().await.expect("json"),
        json!({"error": "empty_message"})
    );
    let hidden = post(json!({"text": "x", "adminOnly": true}))
        .await
        .expect("post");
    assert_eq!(hidden.status().as_u16(), 403);
}
