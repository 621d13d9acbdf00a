//! Sessions: put, get, delete, per user; `ping`.

use chat_shared::store::{Session, SessionStore};

pub async fn sessions_are_put_read_and_deleted(store: &dyn SessionStore) {
    assert_eq!(store.get("u1").await.unwrap(), None);

    let mut session = Session::with_guilds(["g1", "g2"]);
    session.extra.insert("plan".into(), "pro".into());
    store.put("u1", &session).await.unwrap();
    assert_eq!(store.get("u1").await.unwrap(), Some(session));

    let replaced = Session::with_guilds(["g3"]);
    store.put("u1", &replaced).await.unwrap();
    assert_eq!(store.get("u1").await.unwrap(), Some(replaced));

    store.delete("u1").await.unwrap();
    assert_eq!(store.get("u1").await.unwrap(), None);
    store.delete("u1").await.unwrap();
    store.ping().await.unwrap();
}

pub async fn sessions_are_per_user(store: &dyn SessionStore) {
    store
        .put("u1", &Session::with_guilds(["g1"]))
        .await
        .unwrap();
    store
        .put("u2", &Session::with_guilds(["g2"]))
        .await
        .unwrap();

    store.delete("u1").await.unwrap();

    assert_eq!(store.get("u1").await.unwrap(), None);
    let u2 = store
        .get("u2")
        .await
        .unwrap()
        .expect("u2 keeps its session");
    assert_eq!(u2.guild_ids(), ["g2"]);
}
