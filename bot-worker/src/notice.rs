//! Telling the requester alone why the bot did not answer: an error frame (`bot_unavailable`,
//! `rate_limited`) carrying the request's messageId, sent as a user notice so only that user's
//! sockets see it.

use chat_shared::bus::{Bus, UserEvent};
use chat_shared::protocol::{ChatMessage, ErrorCode, ErrorFrame};

/// Sends `code` about `request` to its sender; failures are logged, not returned (there is no
/// one else to tell).
pub async fn tell_requester(bus: &dyn Bus, request: &ChatMessage, code: ErrorCode) {
    let frame = ErrorFrame {
        message_id: Some(request.message_id.clone()),
        guild_id: Some(request.guild_id.clone()),
        ..ErrorFrame::new(code, None)
    };
    if let Err(error) = bus
        .publish_user_event(&request.from.id, UserEvent::Notice { frame })
        .await
    {
        tracing::warn!(%error, %code, "could not tell the requester");
    }
}
