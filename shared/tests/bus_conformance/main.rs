//! The `Bus` conformance suite: the guarantees `chat_shared::bus` documents, written once as
//! generic cases (`cases/`) and run against every implementation — `MemoryBus` and `NatsBus`
//! on a real `nats-server -js` (one fresh server per test). A new bus is proven by adding one
//! `mod` line below with its [`support::Deployment`]. What only a network bus has (several
//! routers and workers on one queue, garbage on the wire, a server restart) is in `nats_bus`.

mod cases;
mod support;

/// Generates one `#[tokio::test]` per conformance case for a deployment constructor.
macro_rules! conformance_tests {
    ($deploy:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let deployment = $deploy;
                crate::cases::$module::$case(&deployment).await;
            }
        )*
    };
}

/// The whole suite, one test per case.
macro_rules! conformance_suite {
    ($deploy:expr) => {
        conformance_tests!($deploy;
            log::seqs_increase_and_prev_links_each_guild_to_its_previous_entry,
            log::a_resend_by_its_owner_returns_the_first_seq_and_stores_nothing,
            log::an_id_of_another_sender_is_refused,
            log::appends_from_two_handles_to_one_guild_form_one_chain,
            log::a_batch_is_appended_as_if_one_by_one,
            read::read_after_filters_by_visibility_and_cuts_at_the_limit,
            read::read_after_one_new_entry_follows_the_same_rules,
            read::read_after_reports_a_gap_when_retention_dropped_entries,
            read::read_before_pages_newest_first_with_visibility,
            read::read_before_a_seq_of_another_guild_starts_below_it,
            read::read_before_stops_at_entries_no_longer_retained,
            history_visible::a_member_page_over_admin_only_entries_finds_the_visible_entries_below_them,
            topics::each_topic_receives_only_its_entries,
            topics::a_subscription_is_live_when_subscribe_returns,
            topics::user_events_reach_every_subscriber_with_the_user_id,
            topics::ping_answers,
            ingress::a_send_reaches_a_router_and_its_ack_travels_back,
            ingress::errors_and_guildless_sends_travel_back,
            bot_queue::a_retried_job_comes_back_as_attempt_two,
            bot_queue::a_job_is_not_delivered_more_than_max_attempts_times,
        );
    };
}

mod memory {
    conformance_suite!(crate::support::Memory::new());
}

mod nats {
    conformance_suite!(crate::support::Nats::start());
}
