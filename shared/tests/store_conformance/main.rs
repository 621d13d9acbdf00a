//! The `SessionStore` conformance suite: what `chat_shared::store` documents (sessions, and
//! connection leases: cap per user, renewal, release, expiry), written once as generic cases
//! (`cases/`) and run against `MemoryStore` and `RedisStore` on a real `redis-server` (one
//! fresh server per test). What only Redis has (documents written by others, a Redis that
//! goes away, the key's own expiry) is in `redis_store`.

mod cases;
mod support;

/// Generates one `#[tokio::test]` per conformance case for a store constructor.
macro_rules! conformance_tests {
    ($deploy:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let deployment = $deploy.await;
                crate::cases::$module::$case(&*deployment.store).await;
            }
        )*
    };
}

/// The whole suite, one test per case.
macro_rules! conformance_suite {
    ($deploy:expr) => {
        conformance_tests!($deploy;
            sessions::sessions_are_put_read_and_deleted,
            sessions::sessions_are_per_user,
            leases::a_user_holds_at_most_max_leases_and_a_release_frees_one,
            leases::expired_leases_free_their_slots,
            leases::renewal_keeps_leases_past_their_first_expiry_and_skips_released_ones,
            leases::renewal_reports_expired_leases_and_spans_several_batches,
        );
    };
}

mod memory {
    conformance_suite!(crate::support::Deployment::memory());
}

mod redis {
    conformance_suite!(crate::support::Deployment::redis());
}
