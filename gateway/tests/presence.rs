//! Presence and typing (issue #13) against embedded mode: the shared cases and the frames of a
//! membership change. The randomized run (no frame reveals a guild to a non-member, the final
//! view equals the truth) is `presence_random.rs`.

mod presence_cases;
mod support;

use presence_cases as cases;
use support::Embedded;

async fn deploy() -> Embedded {
    Embedded::start_with(
        |c| {
            c.presence.presence_linger_ms = cases::LINGER.as_millis() as u64;
            c.presence.presence_ttl_ms = cases::TTL.as_millis() as u64;
            c.presence.presence_max_listed = cases::MAX_LISTED as u32;
        },
        true,
    )
    .await
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let d = deploy().await;
                cases::$case(&d).await;
            }
        )*
    };
}

cases!(
    join_leave_diff_order,
    two_connections_count_once,
    reload_does_not_flap,
    typing_reaches_others_only,
    non_members_see_nothing,
    large_guild_truncated_and_coalesced,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_change_live() {
    let d = deploy().await;
    let bus = d.node().state.bus.clone();
    cases::membership_change_live(&d, bus.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_during_a_held_diff() {
    let d = deploy().await;
    let bus = d.node().state.bus.clone();
    cases::late_joiner_during_a_held_diff(&d, bus.as_ref()).await;
}
