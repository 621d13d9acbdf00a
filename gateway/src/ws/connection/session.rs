//! The session side of a connection: a `refresh` frame (a fresh token for the same user and
//! role, or the 4001 close), and a membership change followed live (the hub, the sequencer and
//! presence learn of the guilds gained and lost).

use chat_shared::protocol::{
    ErrorCode, ErrorFrame, RefreshFrame, Refreshed, ServerFrame, close_code,
};

use super::Reader;
use crate::http::auth::load_guilds;
use crate::outbound::{Membership, Outbound};

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

    /// Re-reads the guild list after a membership change and follows it in the hub (the
    /// sequencer learns of a new guild before its feed can deliver).
    pub(super) async fn reload_guilds(&mut self) {
        let Ok(fresh) = load_guilds(&self.state, &self.caller.user.id).await else {
            return;
        };
        let mine = &self.caller.guilds;
        let gone: Vec<String> = mine
            .iter()
            .filter(|g| !fresh.contains(g))
            .cloned()
            .collect();
        let added: Vec<String> = fresh
            .iter()
            .filter(|g| !mine.contains(g))
            .cloned()
            .collect();
        self.state.hub.leave(&self.handle, &gone, false);
        for (guild, joined) in gone
            .iter()
            .map(|g| (g, false))
            .chain(added.iter().map(|g| (g, true)))
        {
            let change = Membership {
                guild: guild.clone(),
                joined,
            };
            // Ahead of the queue, so the sequencer knows a new guild before its feed delivers.
            self.own.push(Outbound::Membership(Box::new(change)));
        }
        if let Err(error) = self.state.hub.join(&self.handle, &added).await {
            tracing::warn!(%error, "could not follow new guilds");
        }
        // Presence hook (issue #13): a removed membership is gone at once, no linger.
        let presence = &self.state.presence;
        presence.leave(&self.handle, &gone, true);
        presence.join(&self.handle, &self.caller.user, &added);
        if fresh.is_empty() && !self.caller.is_admin() {
            self.handle
                .close(close_code::SESSION_REVOKED, "no guilds left");
        }
        self.caller.guilds = fresh;
    }
}
