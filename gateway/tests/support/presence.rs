//! A client-side view of presence (issue #13) for the tests: snapshots and diffs applied the
//! way a client applies them (idempotent sets), and waits for an expected state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chat_shared::protocol::ServerFrame;

use super::client::Client;

/// How long a test waits for presence to reach an expected state.
pub const SETTLE: Duration = Duration::from_secs(20);
/// The longest single wait for a frame (below the client's panic timeout).
const STEP: Duration = Duration::from_secs(2);

/// What one connection knows about one guild.
#[derive(Debug, Default, Clone)]
pub struct GuildView {
    pub online: BTreeSet<String>,
    pub count: u64,
    pub available: bool,
    pub truncated: bool,
    pub snapshots: usize,
    pub diffs: usize,
}

/// Presence frames one connection received, by guild.
#[derive(Debug, Default)]
pub struct Tracker {
    pub guilds: BTreeMap<String, GuildView>,
    /// Every `typing` received, as (guild, user id).
    pub typing: Vec<(String, String)>,
}

impl Tracker {
    /// Applies one presence frame.
    pub fn apply(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Presence(s) => {
                let view = self.guilds.entry(s.guild_id.clone()).or_default();
                view.online = s.online.iter().map(|u| u.id.clone()).collect();
                view.count = s.count;
                view.available = s.available;
                view.truncated = s.truncated;
                view.snapshots += 1;
            }
            ServerFrame::PresenceDiff(d) => {
                let view = self.guilds.entry(d.guild_id.clone()).or_default();
                for id in &d.left {
                    view.online.remove(id);
                }
                for user in &d.joined {
                    view.online.insert(user.id.clone());
                }
                view.count = d.count;
                view.diffs += 1;
            }
            ServerFrame::Typing(t) => self.typing.push((t.guild_id.clone(), t.user.id.clone())),
            _ => {}
        }
    }

    /// Reads presence frames until `done` holds (panics after [`SETTLE`]).
    pub async fn until(
        &mut self,
        client: &mut Client,
        what: &str,
        done: impl Fn(&Tracker) -> bool,
    ) {
        let deadline = Instant::now() + SETTLE;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "presence never reached {what}: {self:?}"
            );
            // In steps shorter than the client's own frame timeout.
            if let Some(frame) = client.presence_within(STEP).await {
                self.apply(&frame);
            }
        }
    }

    /// Reads presence frames until the guild lists exactly `ids` (and counts them).
    pub async fn until_online(&mut self, client: &mut Client, guild: &str, ids: &[&str]) {
        let want: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        let what = format!("{guild} = {want:?}");
        self.until(client, &what, |t| {
            t.guilds
                .get(guild)
                .is_some_and(|v| v.online == want && v.count == want.len() as u64 && v.available)
        })
        .await;
    }

    /// Applies whatever presence frames arrive within `wait`.
    pub async fn drain(&mut self, client: &mut Client, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            if let Some(frame) = client.presence_within(left.min(STEP)).await {
                self.apply(&frame);
            }
        }
    }

    pub fn view(&self, guild: &str) -> GuildView {
        self.guilds.get(guild).cloned().unwrap_or_default()
    }
}

/// `GET /api/guilds/{guild}/presence` on gateway `i` with `token`: the status and the body.
pub async fn http_presence(
    d: &impl super::Deployment,
    i: usize,
    guild: &str,
    token: &str,
) -> (u16, serde_json::Value) {
    let response = super::http()
        .get(format!("{}/api/guilds/{guild}/presence", d.gateway(i)))
        .bearer_auth(token)
        .send()
        .await
        .expect("presence");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}
