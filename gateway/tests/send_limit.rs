//! The per-user send limit over real sockets and HTTP (issue #14, item 1): members posting in
//! a loop over HTTP get 429 `rate_limited` with Retry-After once over their budget; one user's
//! socket and HTTP sends share one budget; and across two gateway processes on a real Redis
//! the budget is still one.

mod support;

use std::time::Duration;

use chat_shared::protocol::identity::Role;
use futures::future::join_all;
use serde_json::json;
use support::distributed::{Distributed, Topology};
use support::{Deployment, Embedded, Scope, TestUser, http, user};

/// One HTTP post: the status and the Retry-After header (seconds), if any.
async fn post(
    d: &impl Deployment,
    i: usize,
    u: &TestUser,
    guild: &str,
    text: &str,
) -> (u16, Option<u64>) {
    let response = http()
        .post(format!("{}/api/guilds/{guild}/messages", d.gateway(i)))
        .bearer_auth(&u.token)
        .json(&json!({ "text": text }))
        .send()
        .await
        .expect("post");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (response.status().as_u16(), retry_after)
}

#[tokio::test]
async fn members_posting_in_a_loop_over_http_get_429_once_over_the_limit() {
    let d = Embedded::start_with(
        |c| {
            c.send_limits.user_send_rate_per_sec = 2;
            c.send_limits.user_send_burst = 10;
        },
        true,
    )
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let mut members = Vec::new();
    for i in 0..16 {
        members.push(user(&d, &s.user_id(&format!("m{i}")), Role::Member, &[&g]).await);
    }
    let started = std::time::Instant::now();
    let loops = members.iter().map(|m| {
        let (d, g) = (&d, &g);
        async move {
            let (mut created, mut limited) = (0u32, 0u32);
            for n in 0..30 {
                match post(d, 0, m, g, &format!("loop {n}")).await {
                    (201, _) => created += 1,
                    (429, retry_after) => {
                        assert!(
                            retry_after.is_some_and(|s| s >= 1),
                            "429 without Retry-After"
                        );
                        limited += 1;
                    }
                    (status, _) => panic!("unexpected status {status}"),
                }
            }
            (created, limited)
        }
    });
    let outcomes = join_all(loops).await;
    let elapsed = started.elapsed().as_secs_f64();
    // Each member's budget: the burst of 10, then 2 per second (plus one for rounding).
    let allowed = 10 + (2.0 * elapsed).ceil() as u32 + 1;
    for (created, limited) in outcomes {
        assert!(created >= 10, "the burst is allowed: {created}");
        assert!(
            created <= allowed,
            "{created} posts went through, at most {allowed} allowed"
        );
        assert!(limited > 0, "a loop of 30 goes over a burst of 10");
    }
}

#[tokio::test]
async fn one_users_socket_and_http_sends_share_one_budget() {
    let d = Embedded::start_with(
        |c| {
            c.send_limits.user_send_rate_per_sec = 1;
            c.send_limits.user_send_burst = 6;
        },
        true,
    )
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut first = ann.connect(&d, 0).await;
    let mut second = ann.connect(&d, 0).await;
    let started = std::time::Instant::now();
    let mut accepted = 0u32;
    let mut refused = [0u32; 3];
    for n in 0..6 {
        let outcomes = [
            first.post(&g, &format!("one {n}")).await.is_ok(),
            second.post(&g, &format!("two {n}")).await.is_ok(),
            post(&d, 0, &ann, &g, &format!("http {n}")).await.0 == 201,
        ];
        for (path, ok) in outcomes.into_iter().enumerate() {
            if ok {
                accepted += 1;
            } else {
                refused[path] += 1;
            }
        }
    }
    // One budget for two sockets and HTTP: the burst of 6, then 1 per second (plus one for
    // rounding); each connection's own limit would have let all 18 through.
    let allowed = 6 + started.elapsed().as_secs_f64().ceil() as u32 + 1;
    assert!(accepted >= 6, "the burst is allowed: {accepted}");
    assert!(
        accepted <= allowed,
        "{accepted} sends went through, at most {allowed} allowed"
    );
    assert!(
        refused.iter().all(|r| *r > 0),
        "every path is refused once over: {refused:?}"
    );
    // Another user is not affected.
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    assert_eq!(post(&d, 0, &bob, &g, "mine").await.0, 201);
    // The budget refills.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    first.post(&g, "later").await.expect("refilled");
}

#[tokio::test]
async fn bot_requests_have_their_own_per_user_cap() {
    let d = Embedded::start_with(|c| c.send_limits.user_bot_requests_per_min = 2, true).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let ask = |n: u32| json!({"guildId": g, "text": format!("@bot {n}"), "requestBot": true});
    a.request(ask(1)).await.expect("first bot request");
    a.request(ask(2)).await.expect("second bot request");
    let refused = a.request(ask(3)).await.expect_err("third in a minute");
    assert_eq!(refused.code.as_str(), "rate_limited");
    a.post(&g, "plain sends still pass")
        .await
        .expect("not a bot request");
}

#[tokio::test]
async fn one_user_over_two_gateways_shares_the_budget() {
    let env = [("USER_SEND_RATE_PER_SEC", "1"), ("USER_SEND_BURST", "8")];
    let d = Distributed::start_with(Topology {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Topology::default()
    })
    .await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut on_second = ann.connect(&d, 1).await;
    let started = std::time::Instant::now();
    let (mut accepted, mut http_limited, mut socket_limited) = (0u32, 0u32, 0u32);
    for n in 0..12 {
        match post(&d, 0, &ann, &g, &format!("http {n}")).await {
            (201, _) => accepted += 1,
            (429, retry_after) => {
                assert!(
                    retry_after.is_some_and(|s| s >= 1),
                    "429 without Retry-After"
                );
                http_limited += 1;
            }
            (status, _) => panic!("unexpected status {status}"),
        }
        match on_second.post(&g, &format!("socket {n}")).await {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e.code.as_str(), "rate_limited");
                socket_limited += 1;
            }
        }
    }
    // One budget through Redis: the burst of 8, then 1 per second (plus one for rounding);
    // a budget per gateway would let at least 16 through.
    let allowed = 8 + started.elapsed().as_secs_f64().ceil() as u32 + 1;
    assert!(accepted >= 8, "the burst is allowed: {accepted}");
    assert!(
        accepted <= allowed,
        "{accepted} sends went through, at most {allowed} allowed"
    );
    assert!(
        http_limited > 0 && socket_limited > 0,
        "both paths are refused once over"
    );
}
