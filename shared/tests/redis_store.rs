//! The Redis session store against a real `redis-server`: round trips, unreadable
//! documents, and a Redis that goes away and comes back.

use std::time::Duration;

use chat_shared::redis_store::RedisStore;
use chat_shared::session::{Session, SessionStore, StoreError, session_key};
use fred::prelude::{Client, ClientLike, Config, KeysInterface};
use testkit::RedisServer;

async fn raw_client(redis: &RedisServer) -> Client {
    let client = Client::new(Config::from_url(&redis.url()).unwrap(), None, None, None);
    client.init().await.unwrap();
    client
}

#[tokio::test]
async fn sessions_are_put_read_and_deleted() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    assert_eq!(store.get("u1").await.unwrap(), None);

    let mut session = Session::with_guilds(["g1", "g2"]);
    session.extra.insert("plan".into(), "pro".into());
    store.put("u1", &session).await.unwrap();
    assert_eq!(store.get("u1").await.unwrap(), Some(session));

    store.delete("u1").await.unwrap();
    assert_eq!(store.get("u1").await.unwrap(), None);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn documents_written_by_others_are_read_in_the_contract_shape() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let raw = raw_client(&redis).await;
    let document = r#"{"guilds":[{"id":"g1","name":"One"},{"id":42}],"token":"secret"}"#;
    raw.set::<(), _, _>(session_key("u1"), document, None, None, false)
        .await
        .unwrap();

    let session = store.get("u1").await.unwrap().unwrap();

    assert_eq!(session.guild_ids(), ["g1", "42"]);
    assert_eq!(session.guilds[0].name.as_deref(), Some("One"));
}

#[tokio::test]
async fn a_document_that_does_not_parse_is_no_session() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let raw = raw_client(&redis).await;
    raw.set::<(), _, _>(session_key("u1"), "{not json", None, None, false)
        .await
        .unwrap();

    assert_eq!(store.get("u1").await.unwrap(), None);
}

#[tokio::test]
async fn a_stopped_redis_is_unavailable_and_a_restarted_one_is_used_again() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    store
        .put("u1", &Session::with_guilds(["g1"]))
        .await
        .unwrap();

    redis.stop();
    let error = store.get("u1").await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)));
    assert!(store.ping().await.is_err());

    redis.start_again();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.ping().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.get("u1").await.unwrap(), None, "nothing is persisted");
    store
        .put("u1", &Session::with_guilds(["g2"]))
        .await
        .unwrap();
    assert_eq!(
        store.get("u1").await.unwrap(),
        Some(Session::with_guilds(["g2"]))
    );
}

#[tokio::test]
async fn connecting_to_nothing_fails() {
    let port = testkit::free_port();
    let result = RedisStore::connect(&format!("redis://127.0.0.1:{port}")).await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))));
}
