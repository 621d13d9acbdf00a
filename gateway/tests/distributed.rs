//! The contract suite against a distributed deployment: real nats-server and redis-server,
//! 2 gateways, 2 routers and 1 bot worker as separate processes, clients spread over both
//! gateways.

mod contract;
mod support;

use support::distributed::Distributed;

contract_tests!(Distributed::start();
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
    history::history_paging_and_visibility,
    history::me_and_http_post,
);
