//! Connection leases: at most `max` unexpired per user, renewed by taking them again or by
//! `renew_leases`, freed by release or expiry; a released or expired lease is not revived.

use std::num::NonZeroU32;
use std::time::Duration;

use chat_shared::store::{ConnLease, LeaseDecision, RENEW_BATCH, SessionStore};

const MINUTE: Duration = Duration::from_secs(60);

fn cap(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("a cap above zero")
}

async fn granted(store: &dyn SessionStore, lease: &ConnLease, max: u32, ttl: Duration) -> bool {
    match store.acquire_lease(lease, cap(max), ttl).await.unwrap() {
        LeaseDecision::Granted => true,
        LeaseDecision::Full { .. } => false,
    }
}

/// Waits until `lease` is granted, for at most `within`.
async fn granted_within(store: &dyn SessionStore, lease: &ConnLease, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while !granted(store, lease, 2, MINUTE).await {
        assert!(tokio::time::Instant::now() < deadline, "never granted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn a_user_holds_at_most_max_leases_and_a_release_frees_one(store: &dyn SessionStore) {
    let leases: Vec<ConnLease> = (0..3).map(|_| ConnLease::new("u1")).collect();

    assert!(granted(store, &leases[0], 2, MINUTE).await);
    assert!(granted(store, &leases[1], 2, MINUTE).await);
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
        granted(store, &ConnLease::new("u2"), 2, MINUTE).await,
        "per user"
    );
    assert!(
        granted(store, &leases[0], 2, MINUTE).await,
        "a held lease is renewed"
    );

    store.release_lease(&leases[0]).await.unwrap();
    assert!(granted(store, &leases[2], 2, MINUTE).await);
    assert!(
        !granted(store, &ConnLease::new("u1"), 2, MINUTE).await,
        "leases 1 and 2 hold both slots"
    );
    store.release_lease(&leases[0]).await.unwrap();
}

pub async fn expired_leases_free_their_slots(store: &dyn SessionStore) {
    let short = Duration::from_millis(1_500);
    assert!(granted(store, &ConnLease::new("u1"), 2, short).await);
    assert!(granted(store, &ConnLease::new("u1"), 2, short).await);
    // The second lease was granted last, so it has surely expired from here on.
    let both_expired = tokio::time::Instant::now() + short;

    let late = ConnLease::new("u1");
    assert!(!granted(store, &late, 2, MINUTE).await);
    granted_within(store, &late, Duration::from_secs(10)).await;
    // `late` can take the first slot a moment before the second lease runs out (the two were
    // granted moments apart, further apart on a loaded machine).
    tokio::time::sleep_until(both_expired).await;

    assert!(
        granted(store, &ConnLease::new("u1"), 2, MINUTE).await,
        "both expired slots were freed"
    );
    assert!(!granted(store, &ConnLease::new("u1"), 2, MINUTE).await);
}

pub async fn renewal_keeps_leases_past_their_first_expiry_and_skips_released_ones(
    store: &dyn SessionStore,
) {
    let ttl = Duration::from_millis(1_500);
    let (kept, released) = (ConnLease::new("u1"), ConnLease::new("u1"));
    assert!(granted(store, &kept, 2, ttl).await);
    assert!(granted(store, &released, 2, ttl).await);
    store.release_lease(&released).await.unwrap();

    let both = [kept.clone(), released.clone()];
    assert_eq!(
        store.renew_leases(&both, MINUTE).await.unwrap(),
        1,
        "one was gone"
    );

    assert!(
        granted(store, &ConnLease::new("u1"), 2, MINUTE).await,
        "the released slot was not taken again by the renewal"
    );
    assert!(!granted(store, &ConnLease::new("u1"), 2, MINUTE).await);
    tokio::time::sleep(ttl * 2).await;
    assert!(
        !granted(store, &ConnLease::new("u1"), 2, MINUTE).await,
        "the renewed lease outlived its first expiry"
    );
}

pub async fn renewal_reports_expired_leases_and_spans_several_batches(store: &dyn SessionStore) {
    let many: Vec<ConnLease> = (0..RENEW_BATCH + 10)
        .map(|i| ConnLease::new(&format!("u{}", i % 7)))
        .collect();
    // Long enough for every acquire to be done before the first lease would expire.
    let short = Duration::from_secs(4);
    for lease in &many {
        assert!(granted(store, lease, 1000, short).await);
    }
    assert_eq!(store.renew_leases(&many, MINUTE).await.unwrap(), 0);
    tokio::time::sleep(short * 2).await;
    assert_eq!(
        store.renew_leases(&many, MINUTE).await.unwrap(),
        0,
        "every batch, the last one too, was renewed past the first expiry"
    );

    let expiring = ConnLease::new("x");
    assert!(granted(store, &expiring, 1, Duration::from_millis(100)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.renew_leases(&[expiring], MINUTE).await.unwrap(), 1);
}
