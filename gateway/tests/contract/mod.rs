//! The contract suite: every rule of DESIGN.md checked over real sockets, written once and run
//! against each deployment (embedded, distributed). Isolation is checked without sleeping: after
//! the message a client must not see, a marker is posted where it may see; the marker must be
//! the next message it gets.

#![allow(dead_code)]

pub mod handshake;
pub mod history;
pub mod messaging;
pub mod resume;

use chat_shared::protocol::SequencedMessage;

use crate::support::client::Client;

/// Asserts the next message `client` receives is `marker_id` (nothing slipped in before it).
pub async fn next_is(client: &mut Client, marker_id: &str) -> SequencedMessage {
    let next = client.message().await;
    assert_eq!(
        next.message.message_id, marker_id,
        "unexpected message before the marker: {next:?}"
    );
    next
}

/// Generates one `#[tokio::test]` per contract case for a deployment constructor.
#[macro_export]
macro_rules! contract_tests {
    ($deploy:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let deployment = $deploy.await;
                contract::$module::$case(&deployment).await;
            }
        )*
    };
}

/// The whole contract suite, one test per case, for a deployment constructor.
#[macro_export]
macro_rules! contract_suite {
    ($deploy:expr) => {
        contract_tests!($deploy;
            handshake::refusals,
            handshake::accepted_ways_and_hello,
            messaging::guild_isolation,
            messaging::admin_only_isolation,
            messaging::send_error_codes,
            messaging::rate_limited_then_recovers,
            messaging::bad_frames_keep_the_connection,
            messaging::frame_too_big_closes_1009,
            messaging::one_ack_per_send_in_seq_order,
            messaging::idempotent_resend,
            messaging::msgpack_path,
            messaging::bot_replies,
            resume::resume_replays_exactly_the_missed,
            resume::resume_refuses_foreign_guilds,
            resume::resume_after_live_has_no_duplicates,
            resume::handshake_resume_replays_before_live,
            resume::handshake_resume_refusals,
            history::history_paging_and_visibility,
            history::me_and_http_post,
        );
    };
}
