//! A resume's replay: the guild log after the client's position, read page by page and handed
//! to the connection's queue; its sequencer holds the guild's live messages until the last
//! page.

use std::sync::Arc;

use chat_shared::bus::Visibility;
use chat_shared::protocol::{ErrorCode, ErrorFrame, ServerFrame};

use crate::state::AppState;
use crate::wire_entry::WireEntry;
use crate::ws::handle::{ConnHandle, Outbound, ResumePage};

/// Replay entries read per page.
const REPLAY_PAGE: usize = 500;

/// Reads the guild log after `after` page by page and hands it to the writer.
pub async fn replay(
    state: AppState,
    handle: ConnHandle,
    guild: Arc<str>,
    mut after: u64,
    visibility: Visibility,
) {
    let mut gap = false;
    loop {
        let page = match state
            .bus
            .read_after(&guild, after, REPLAY_PAGE, visibility)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, guild = %guild, "replay failed");
                let failure = ErrorFrame {
                    guild_id: Some(guild.to_string()),
                    ..ErrorFrame::new(ErrorCode::ServerError, None)
                };
                handle
                    .send(Outbound::frame(ServerFrame::Error(failure)))
                    .await;
                handle
                    .send(Outbound::ResumePage(Box::new(ResumePage {
                        guild,
                        entries: Vec::new(),
                        gap,
                        done: true,
                    })))
                    .await;
                return;
            }
        };
        gap |= page.gap;
        if let Some(last) = page.entries.last() {
            after = last.seq;
        }
        let done = !page.more;
        if !handle
            .send(Outbound::ResumePage(Box::new(ResumePage {
                guild: guild.clone(),
                entries: page.entries.into_iter().map(WireEntry::new).collect(),
                gap,
                done,
            })))
            .await
            || done
        {
            return;
        }
    }
}
