//! The `prev_visible` link of the records on the wire (issue #14 item 5) across a change of
//! writer: a new `NatsBus` on the same stream (a router restarted, or another one taking the
//! guild over) reads the guild's visible head back from the newest record, so the link of the
//! first record it writes is right, whether that newest record holds a visible entry or only
//! admin-only ones. (Message ids are unique across guilds: the claims are keyed by id.)

use chat_shared::bus::{Bus, LogEntry, Visibility};
use chat_shared::protocol::ChatMessage;
use chat_shared::protocol::identity::{Role, UserInfo};
use testkit::NatsServer;

use crate::support::*;

fn entry_of(guild: &str, id: &str, admin_only: bool) -> ChatMessage {
    if admin_only {
        ChatMessage {
            admin_only: true,
            from: UserInfo::new("root", "root", Role::Admin),
            ..message(guild, id, "root")
        }
    } else {
        message(guild, id, "u1")
    }
}

/// The `prev_visible` of the record holding `entry`.
async fn link_of(server: &NatsServer, entry: &LogEntry) -> Option<u64> {
    stored_record(server, entry.seq).await.prev_visible
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_writer_links_its_first_record_to_the_visible_head_it_read_back() {
    let server = NatsServer::start();
    let before = bus(&server).await;
    // g1's newest record is admin-only (its own link tells); g2's holds a visible entry.
    let g1_visible = append_new(&before, entry_of("g1", "v1", false)).await;
    let g1_admin = append_new(&before, entry_of("g1", "a1", true)).await;
    let g2_visible = append_new(&before, entry_of("g2", "g2-v1", false)).await;
    assert_eq!(
        link_of(&server, &g1_visible).await,
        Some(0),
        "nothing before"
    );
    assert_eq!(link_of(&server, &g1_admin).await, Some(g1_visible.seq));
    drop(before);

    let after = bus(&server).await;
    let table = [
        ("g1", "a2", true, g1_visible.seq),
        ("g1", "v2", false, g1_visible.seq),
        ("g2", "g2-a1", true, g2_visible.seq),
    ];
    let mut newest = Vec::new();
    for (guild, id, admin_only, link) in table {
        let entry = append_new(&after, entry_of(guild, id, admin_only)).await;
        assert_eq!(link_of(&server, &entry).await, Some(link), "{guild} {id}");
        newest.push(entry);
    }
    let g1_page = (after.read_history("g1", None, 10, Visibility::Public).await).expect("page");
    assert_eq!(ids(&g1_page.entries), ["v2", "v1"]);
    assert!(!g1_page.more);
    let g2_page = (after.read_history("g2", None, 10, Visibility::Public).await).expect("page");
    assert_eq!(ids(&g2_page.entries), ["g2-v1"]);
    // The next record of g1 links to v2, the visible head the new writer moved to.
    let g1_next = append_new(&after, entry_of("g1", "a3", true)).await;
    assert_eq!(link_of(&server, &g1_next).await, Some(newest[1].seq));
}
