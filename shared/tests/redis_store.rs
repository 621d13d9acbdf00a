//! The Redis session store against a real `redis-server`, Redis side: documents written by
//! others, unreadable documents, a Redis that goes away and comes back, and the keys the lease
//! scripts leave. What every store does is checked once for all in `store_conformance`.

use std::time::Duration;

use chat_shared::store::RedisStore;
use chat_shared::store::{Session, SessionStore, StoreError, session_key};
use fred::prelude::{Client, ClientLike, Config, KeysInterface};
use testkit::RedisServer;

async fn raw_client(redis: &RedisServer) -> Client {
    let client = Client::new(Config::from_url(&redis.url()).unwrap(), None, None, None);
    client.init().await.unwrap();
    client
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

mod leases {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use chat_shared::store::RedisStore;
    use chat_shared::store::SessionStore;
    use chat_shared::store::{ConnLease, LeaseDecision, RENEW_BATCH, conns_key};
    use fred::prelude::{KeysInterface, SortedSetsInterface};
    use testkit::RedisServer;

    use super::raw_client;

    const MINUTE: Duration = Duration::from_secs(60);

    fn cap(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    async fn granted(store: &RedisStore, lease: &ConnLease, max: u32, ttl: Duration) -> bool {
        match store.acquire_lease(lease, cap(max), ttl).await.unwrap() {
            LeaseDecision::Granted => true,
            LeaseDecision::Full { .. } => false,
        }
    }

    /// Waits until `lease` is granted, for at most `within`.
    async fn granted_within(
        store: &RedisStore,
        lease: &ConnLease,
        ttl: Duration,
        within: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        while !granted(store, lease, 2, ttl).await {
            assert!(tokio::time::Instant::now() < deadline, "never granted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_user_holds_at_most_max_leases_and_a_release_frees_one() {
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        let leases: Vec<ConnLease> = (0..3).map(|_| ConnLease::new("u1")).collect();

        assert!(granted(&store, &leases[0], 2, MINUTE).await);
        assert!(granted(&store, &leases[1], 2, MINUTE).await);
        let LeaseDecision::Full { retry_after } = store
            .acquire_lease(&leases[2], cap(2), MINUTE)
            .await
            .unwrap()
        else {
            panic!("a third lease is over the cap");
        };
        assert!(
            retry_after <= MINUTE && retry_after > MINUTE / 2,
            "retry when the oldest lease would expire: {retry_after:?}"
        );
        assert!(
            granted(&store, &ConnLease::new("u2"), 2, MINUTE).await,
            "per user"
        );
        assert!(
            granted(&store, &leases[0], 2, MINUTE).await,
            "a held lease is renewed"
        );

        store.release_lease(&leases[0]).await.unwrap();
        assert!(granted(&store, &leases[2], 2, MINUTE).await);
        let raw = raw_client(&redis).await;
        let held: Vec<String> = raw
            .zrange(conns_key("u1"), 0, -1, None, false, None, false)
            .await
            .unwrap();
        assert_eq!(held.len(), 2);
        assert!(held.contains(&leases[1].lease_id) && held.contains(&leases[2].lease_id));
    }

    #[tokio::test]
    async fn expired_leases_free_their_slots_and_the_key_expires_with_them() {
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        let raw = raw_client(&redis).await;
        let short = Duration::from_millis(1_500);
        assert!(granted(&store, &ConnLease::new("u1"), 2, short).await);
        assert!(granted(&store, &ConnLease::new("u1"), 2, short).await);
        let pttl: i64 = raw.pttl(conns_key("u1")).await.unwrap();
        assert!(
            pttl > 0 && pttl <= 1_500,
            "the key expires with its last lease: {pttl}"
        );

        let late = ConnLease::new("u1");
        assert!(!granted(&store, &late, 2, MINUTE).await);
        granted_within(&store, &late, MINUTE, Duration::from_secs(10)).await;

        let held: i64 = raw.zcard(conns_key("u1")).await.unwrap();
        assert_eq!(held, 1, "the expired leases were dropped");
        let pttl: i64 = raw.pttl(conns_key("u1")).await.unwrap();
        assert!(
            pttl > 30_000,
            "the key now lives as long as the new lease: {pttl}"
        );
    }

    #[tokio::test]
    async fn renewal_keeps_leases_past_their_first_expiry_and_skips_released_ones() {
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        let ttl = Duration::from_millis(1_500);
        let (kept, released) = (ConnLease::new("u1"), ConnLease::new("u1"));
        assert!(granted(&store, &kept, 2, ttl).await);
        assert!(granted(&store, &released, 2, ttl).await);
        store.release_lease(&released).await.unwrap();

        let both = [kept.clone(), released.clone()];
        assert_eq!(
            store.renew_leases(&both, MINUTE).await.unwrap(),
            1,
            "one was gone"
        );
        let raw = raw_client(&redis).await;
        let score: Option<f64> = raw
            .zscore(conns_key("u1"), released.lease_id.clone())
            .await
            .unwrap();
        assert_eq!(
            score, None,
            "a released lease is not taken again by a renewal"
        );

        // Past the first lifetime the renewed lease still holds its slot.
        assert!(
            granted(&store, &ConnLease::new("u1"), 2, MINUTE).await,
            "the released slot"
        );
        assert!(!granted(&store, &ConnLease::new("u1"), 2, MINUTE).await);
        tokio::time::sleep(ttl * 2).await;
        assert!(
            !granted(&store, &ConnLease::new("u1"), 2, MINUTE).await,
            "renewed lease expired"
        );
    }

    #[tokio::test]
    async fn renewal_reports_expired_leases_and_spans_several_batches() {
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        let many: Vec<ConnLease> = (0..RENEW_BATCH + 10)
            .map(|i| ConnLease::new(&format!("u{}", i % 7)))
            .collect();
        for lease in &many {
            assert!(granted(&store, lease, 1000, MINUTE).await);
        }
        let raw = raw_client(&redis).await;
        let last = many.last().unwrap();
        let score = || async {
            let score: f64 = raw
                .zscore(conns_key(&last.user_id), last.lease_id.clone())
                .await
                .unwrap();
            score
        };
        let before = score().await;
        assert_eq!(store.renew_leases(&many, MINUTE * 10).await.unwrap(), 0);
        let after = score().await;
        assert!(
            after - before >= (MINUTE * 9).as_millis() as f64,
            "the last batch was renewed too: {before} → {after}"
        );

        let expiring = ConnLease::new("x");
        assert!(granted(&store, &expiring, 1, Duration::from_millis(100)).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.renew_leases(&[expiring], MINUTE).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_stopped_redis_refuses_leases_as_unavailable() {
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        redis.stop();
        let lease = ConnLease::new("u1");
        assert!(store.acquire_lease(&lease, cap(2), MINUTE).await.is_err());
        assert!(
            store
                .renew_leases(std::slice::from_ref(&lease), MINUTE)
                .await
                .is_err()
        );
        assert!(store.release_lease(&lease).await.is_err());
    }
}
