//! The context of a bot request: the guild's messages just before it, newest first, read with
//! the request's visibility — admin-only messages only for an admin-only request (whose reply
//! only admins see). The bus already filters by visibility; the filter is applied here again so
//! that this guarantee does not rest on any one bus implementation.

use std::sync::Arc;

use chat_shared::bus::{BotJob, Bus, BusError, Visibility};
use chat_shared::protocol::ChatMessage;

/// Up to `limit` messages of the request's guild before it (newest first) that a reader of
/// the reply may see.
pub async fn recent_messages(
    bus: &dyn Bus,
    job: &BotJob,
    limit: usize,
) -> Result<Vec<Arc<ChatMessage>>, BusError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let request = &job.request;
    let visibility = Visibility::for_admin(request.admin_only);
    let (entries, _more) = bus
        .read_before(&request.guild_id, Some(job.seq), limit, visibility)
        .await?;
    Ok(entries
        .into_iter()
        .map(|entry| entry.message)
        .filter(|message| {
            message.guild_id == request.guild_id
                && message.message_id != request.message_id
                && visibility.admits(message)
        })
        .take(limit)
        .collect())
}
