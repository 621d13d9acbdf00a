//! One connection's resumes: which guild replays run (at most `MAX_RESUMES_IN_FLIGHT` at
//! once, the others waiting their turn, at most `MAX_RESUMES_QUEUED` of them), a guild never
//! twice at a time, and how many `resume` frames a connection may send
//! (`RESUME_FRAMES_PER_MIN`). Every replay's page waits for room in the connection's
//! byte-bounded queue, so what resumes pin in memory is bounded per connection. The futures set
//! and the rate limiter exist only once a connection resumes.

use std::collections::{HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;

use chat_shared::bus::Visibility;
use chat_shared::protocol::ErrorCode;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota};

use crate::state::AppState;
use crate::ws::handle::ConnHandle;
use crate::ws::replay::replay;

/// `resume` frames allowed at once above the per-minute rate.
const RESUME_BURST: u32 = 4;

/// Nothing until the connection's first `resume` (an idle connection's task keeps a pointer).
#[derive(Default)]
pub struct Resumes(Option<Box<State>>);

#[derive(Default)]
struct State {
    running: Option<FuturesUnordered<BoxFuture<'static, Arc<str>>>>,
    waiting: VecDeque<(Arc<str>, u64)>,
    /// Guilds running or waiting.
    active: HashSet<Arc<str>>,
    limiter: Option<Box<DefaultDirectRateLimiter>>,
}

impl Resumes {
    fn state(&mut self) -> &mut State {
        self.0.get_or_insert_with(Box::default)
    }

    /// Whether one more `resume` frame is allowed now.
    pub fn frame_allowed(&mut self, per_minute: u32) -> bool {
        self.state().frame_allowed(per_minute)
    }

    /// Takes a resume of `guild` from `after`, or says why not (`rate_limited`: that guild
    /// is being resumed already, or too many are waiting).
    pub fn admit(&mut self, state: &AppState, guild: &Arc<str>) -> Result<(), ErrorCode> {
        self.state().admit(state, guild)
    }

    /// Queues an admitted resume and starts what may start.
    pub fn push(&mut self, state: &AppState, handle: &ConnHandle, guild: Arc<str>, after: u64) {
        self.state().push(state, handle, guild, after);
    }

    /// Whether a replay is running (for the reader's select).
    pub fn busy(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.busy())
    }

    /// Waits for a replay to end, then starts the next one waiting.
    pub async fn next(&mut self, state: &AppState, handle: &ConnHandle) {
        match self.0.as_mut() {
            Some(resumes) => resumes.next(state, handle).await,
            None => std::future::pending().await,
        }
    }
}

impl State {
    fn frame_allowed(&mut self, per_minute: u32) -> bool {
        let limiter = self.limiter.get_or_insert_with(|| {
            let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(RESUME_BURST).unwrap_or(NonZeroU32::MIN);
            Box::new(crate::rate::limiter(
                Quota::per_minute(rate).allow_burst(burst),
            ))
        });
        limiter.check().is_ok()
    }

    fn admit(&mut self, state: &AppState, guild: &Arc<str>) -> Result<(), ErrorCode> {
        let queued = state.config.outbound.max_resumes_queued as usize;
        if self.active.contains(guild) || self.waiting.len() >= queued {
            return Err(ErrorCode::RateLimited);
        }
        self.active.insert(guild.clone());
        Ok(())
    }

    fn push(&mut self, state: &AppState, handle: &ConnHandle, guild: Arc<str>, after: u64) {
        self.waiting.push_back((guild, after));
        self.start(state, handle);
    }

    /// Starts waiting replays while fewer than `MAX_RESUMES_IN_FLIGHT` run.
    fn start(&mut self, state: &AppState, handle: &ConnHandle) {
        let limit = state.config.outbound.max_resumes_in_flight as usize;
        let running = self.running.get_or_insert_with(FuturesUnordered::new);
        while running.len() < limit {
            let Some((guild, after)) = self.waiting.pop_front() else {
                break;
            };
            let visibility = Visibility::for_admin(handle.is_admin());
            let (state, handle, done) = (state.clone(), handle.clone(), guild.clone());
            running.push(
                async move {
                    replay(state, handle, guild, after, visibility).await;
                    done
                }
                .boxed(),
            );
        }
    }

    fn busy(&self) -> bool {
        self.running.as_ref().is_some_and(|r| !r.is_empty())
    }

    async fn next(&mut self, state: &AppState, handle: &ConnHandle) {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        if let Some(guild) = running.next().await {
            self.active.remove(&guild);
            self.start(state, handle);
        }
        if !self.busy() && self.waiting.is_empty() {
            self.running = None;
        }
    }
}
