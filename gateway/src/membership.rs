//! A user's guilds changed (a new login, a revocation check): what one connection does about
//! it, on either transport. It reads the guild list again, follows it in the hub and in
//! presence (a guild lost is left at once, without a linger), and closes a non-admin left with
//! no guild (4001). The transport hands the changes to its sequencer, before the next item of
//! its queue, so a new guild's cursor exists before its feed delivers.

use chat_shared::protocol::close_code;

use crate::http::auth::{Caller, load_guilds};
use crate::outbound::Membership;
use crate::state::AppState;
use crate::ws::handle::ConnHandle;

/// Follows the caller's current guilds; the guilds lost then gained, as sequencer changes
/// (none when the session store could not be read: the next change tries again).
pub async fn follow(state: &AppState, caller: &mut Caller, handle: &ConnHandle) -> Vec<Membership> {
    let Ok(fresh) = load_guilds(state, &caller.user.id).await else {
        return Vec::new();
    };
    let (gone, added) = changed(&caller.guilds, &fresh);
    state.hub.leave(handle, &gone, false);
    if let Err(error) = state.hub.join(handle, &added).await {
        tracing::warn!(%error, "could not follow new guilds");
    }
    state.presence.leave(handle, &gone, true);
    state.presence.join(handle, &caller.user, &added);
    if fresh.is_empty() && !caller.is_admin() {
        handle.close(close_code::SESSION_REVOKED, "no guilds left");
    }
    caller.guilds = fresh;
    let left = gone.into_iter().map(|guild| Membership {
        guild,
        joined: false,
    });
    let joined = added.into_iter().map(|guild| Membership {
        guild,
        joined: true,
    });
    left.chain(joined).collect()
}

/// The guilds of `before` not in `now`, and those of `now` not in `before`.
fn changed(before: &[String], now: &[String]) -> (Vec<String>, Vec<String>) {
    let gone = before
        .iter()
        .filter(|g| !now.contains(g))
        .cloned()
        .collect();
    let added = now
        .iter()
        .filter(|g| !before.contains(g))
        .cloned()
        .collect();
    (gone, added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    type Names = &'static [&'static str];

    #[test]
    fn the_guilds_lost_and_gained() {
        // (before, now, gone, added)
        let cases: [(Names, Names, Names, Names); 4] = [
            (&["a", "b"], &["a", "b"], &[], &[]),
            (&["a", "b"], &["b", "c"], &["a"], &["c"]),
            (&[], &["a"], &[], &["a"]),
            (&["a"], &[], &["a"], &[]),
        ];
        for (before, now, gone, added) in cases {
            let got = changed(&names(before), &names(now));
            assert_eq!(got, (names(gone), names(added)), "{before:?} → {now:?}");
        }
    }
}
