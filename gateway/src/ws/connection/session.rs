//! The session side of a connection: a `refresh` frame (a fresh token for the same user and
//! role, or the 4001 close), and a membership change followed live (the hub, the sequencer and
//! presence learn of the guilds gained and lost).

use chat_shared::protocol::{
    ErrorCode, ErrorFrame, RefreshFrame, Refreshed, ServerFrame, close_code,
};

use super::Reader;
use crate::outbound::Outbound;

impl Reader {
    /// Takes a fresh token for the same user and role, pushing back the 4001 close.
    pub(super) async fn on_refresh(&mut self, frame: RefreshFrame) {
        let accepted =
            self.state.verifier.verify(&frame.token).ok().filter(|t| {
                t.user.id == self.caller.user.id && t.user.role == self.caller.user.role
            });
        if accepted.is_some()
            && !crate::revocation::refresh_allowed(
                &self.state,
                &self.caller.user.id,
                self.caller.is_admin(),
            )
            .await
        {
            self.handle
                .close(close_code::SESSION_REVOKED, "session revoked");
            return;
        }
        let answer = match accepted {
            Some(token) => {
                self.handle.set_token_exp(token.exp);
                self.caller.exp = token.exp;
                ServerFrame::Refreshed(Refreshed {
                    reference: frame.reference,
                    exp: token.exp,
                })
            }
            None => ServerFrame::Error(ErrorFrame::new(ErrorCode::NotAuthorized, frame.reference)),
        };
        self.reply(answer);
    }

    /// Re-reads the guild list after a membership change and follows it
    /// ([`crate::membership`]); the changes go ahead of the queue, so the sequencer learns of
    /// a new guild before its feed can deliver.
    pub(super) async fn reload_guilds(&mut self) {
        let changes = crate::membership::follow(&self.state, &mut self.caller, &self.handle).await;
        self.own.extend(
            changes
                .into_iter()
                .map(|change| Outbound::Membership(Box::new(change))),
        );
    }
}
