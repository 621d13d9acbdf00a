//! The Redis ACL users of `deploy/redis/users.acl.template`, against a real redis-server
//! running that file: the gateway's store works as the `gateway` user (sessions, leases), and
//! what it has no business doing is refused; no password, no access.

use std::num::NonZeroU32;
use std::time::Duration;

use chat_shared::store::ConnLease;
use chat_shared::store::RedisStore;
use chat_shared::store::{Session, SessionStore};
use fred::prelude::{Client, ClientLike, Config, KeysInterface};
use testkit::RedisServer;

fn server() -> RedisServer {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/redis/users.acl.template"
    );
    let acl = std::fs::read_to_string(path).expect("deploy/redis/users.acl.template");
    let acl = acl
        .replace("${REDIS_GATEWAY_PASSWORD}", "gw-pass")
        .replace("${REDIS_BOT_PASSWORD}", "bot-pass")
        .replace("${REDIS_ADMIN_PASSWORD}", "admin-pass");
    let acl: String = acl
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    RedisServer::start_with_acl(&acl)
}

fn url(redis: &RedisServer, user: &str, password: &str) -> String {
    format!("redis://{user}:{password}@127.0.0.1:{}", redis.port())
}

async fn raw(url: &str) -> Client {
    let client = Client::new(Config::from_url(url).expect("url"), None, None, None);
    client.init().await.expect("connects");
    client
}

#[tokio::test]
async fn the_gateway_user_keeps_to_sessions_and_leases() {
    let redis = server();
    let store = RedisStore::connect(&url(&redis, "gateway", "gw-pass"))
        .await
        .expect("the gateway connects as its user");
    store.ping().await.expect("ping");
    store
        .put("u1", &Session::with_guilds(["g1"]))
        .await
        .expect("put");
    assert!(store.get("u1").await.expect("get").is_some());
    assert_eq!(
        store
            .get_many(&["u1".into(), "u2".into()])
            .await
            .expect("mget")
            .len(),
        2
    );
    let lease = ConnLease::new("u1");
    store
        .acquire_lease(&lease, NonZeroU32::MIN, Duration::from_secs(30))
        .await
        .expect("acquire a lease");
    store.release_lease(&lease).await.expect("release");

    let gw = raw(&url(&redis, "gateway", "gw-pass")).await;
    assert!(
        gw.set::<(), _, _>("other:key", "x", None, None, false)
            .await
            .is_err(),
        "wrote another key"
    );
    assert!(
        gw.flushall::<()>(false).await.is_err(),
        "flushed the database"
    );
    let admin = raw(&url(&redis, "admin", "admin-pass")).await;
    let count: i64 = admin.exists("session:u1").await.expect("admin reads");
    assert_eq!(count, 1);

    let nobody = Client::new(
        Config::from_url(&format!("redis://127.0.0.1:{}", redis.port())).expect("url"),
        None,
        None,
        None,
    );
    let refused = async {
        nobody.init().await?;
        nobody.get::<Option<String>, _>("session:u1").await
    };
    assert!(refused.await.is_err(), "the default user is off");
}

#[tokio::test]
async fn the_gateway_user_may_watch_sessions_and_nothing_else() {
    use chat_shared::store::session_watch::{SessionChange, watch_sessions};
    let redis = server();
    let port = redis.port().to_string();
    let on = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &port,
            "--user",
            "admin",
            "--pass",
            "admin-pass",
            "--no-auth-warning",
        ])
        .args(["CONFIG", "SET", "notify-keyspace-events", "K$gx"])
        .output()
        .expect("redis-cli runs");
    assert!(on.status.success(), "notifications on: {on:?}");
    let mut changes = watch_sessions(&url(&redis, "gateway", "gw-pass"))
        .await
        .expect("the gateway user subscribes to session notifications");
    let admin = raw(&url(&redis, "admin", "admin-pass")).await;
    admin
        .set::<(), _, _>("session:w1", "{}", None, None, false)
        .await
        .expect("set");
    let wait = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match changes.recv().await {
                Some(SessionChange::User(user)) => return user,
                Some(SessionChange::Resync) => continue,
                None => panic!("the watch ended"),
            }
        }
    });
    assert_eq!(wait.await.expect("a notification"), "w1");
    // What else the gateway user may not watch (redis-cli: fred does not surface a refused
    // subscription as an error).
    for args in [
        ["PSUBSCRIBE", "__keyspace@0__:*"],
        ["SUBSCRIBE", "chat.events"],
    ] {
        let out = std::process::Command::new("timeout")
            .args([
                "5",
                "redis-cli",
                "-p",
                &port,
                "--user",
                "gateway",
                "--pass",
                "gw-pass",
            ])
            .arg("--no-auth-warning")
            .args(args)
            .output()
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NOPERM"), "{args:?} allowed: {text}");
    }
}
