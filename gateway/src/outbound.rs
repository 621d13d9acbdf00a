//! The transport seam: what a connection's outbound queue carries, and [`Outbox`], which turns
//! those items into what to write. Everything here is transport-neutral — a live entry, a
//! [`ServerFrame`], a replay page — so any transport (the WebSocket writer in
//! [`crate::ws::writer`], a Socket.IO writer) runs the same connection core:
//!
//! ```text
//!  hub (feeds) ──Live──┐                     ┌─ Write::Message(entry) ─┐
//!  reader ──Frame──────┤                     │                          ├─▶ transport encodes,
//!  replay ──Resume*────┼─▶ ConnHandle queue ─▶ Outbox (Sequencer) ──────┤    writes, flushes
//!  fetches ──Filled────┤   (items + bytes)    │                          │
//!  hub ──Resync────────┘                      └─ Write::Frame(frame) ───┘
//! ```
//!
//! A transport creates the connection with [`crate::ws::handle::ConnHandle::new`], joins the
//! hub, pops the queue and hands each item to [`Outbox::apply`], then writes what it returns
//! (and calls [`crate::ws::handle::ConnHandle::release`] with the item's
//! [`Outbound::cost`]). The Outbox runs the sequencer's fetches itself (each a task that feeds
//! its page back through the queue) and closes a connection that falls too far behind.

use std::sync::Arc;

use chat_shared::bus::Bus;
use chat_shared::protocol::{Resumed, ServerFrame, close_code};
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::sequencer::{Fetch, Out, Sequencer};
use crate::shared_frame::{SharedFrame, ViewerSnapshot};
use crate::wire_entry::WireEntry;
use crate::ws::handle::ConnHandle;

/// Entries read per gap fetch.
const FETCH_LIMIT: usize = 500;
/// What an item is taken to cost beyond its messages' text (framing, fields, the item).
const ITEM_OVERHEAD: usize = 160;

/// What a connection's queue carries, in order. Kept to two words (rare, larger items are
/// boxed).
#[derive(Debug)]
pub enum Outbound {
    /// A live entry from a feed, shared by every recipient.
    Live(Arc<WireEntry>),
    /// A frame for this connection only (hello, ack, error, pong, …).
    Frame(Box<ServerFrame>),
    /// A frame many connections get (presence, typing), encoded once for all of them.
    Shared(Arc<SharedFrame>),
    /// A shared presence snapshot with this connection's user added.
    Snapshot(Box<ViewerSnapshot>),
    /// A resume of this guild starts: its live entries wait for the replay.
    ResumeBegin(Box<ResumeBegin>),
    /// A page of a replay.
    ResumePage(Box<ResumePage>),
    /// The page of a gap fetch.
    Filled(Box<Filled>),
    /// The connection's guilds changed.
    Membership(Box<Membership>),
    /// The bus reconnected: fetch what may have been lost meanwhile.
    Resync,
}

impl Outbound {
    pub fn frame(frame: ServerFrame) -> Self {
        Outbound::Frame(Box::new(frame))
    }

    /// The bytes this item is taken to pin while queued.
    pub fn cost(&self) -> usize {
        let entries = |entries: &[Arc<WireEntry>]| {
            entries
                .iter()
                .map(|e| e.message.text.len() + ITEM_OVERHEAD)
                .sum::<usize>()
        };
        ITEM_OVERHEAD
            + match self {
                Outbound::Live(entry) => entry.message.text.len(),
                Outbound::Shared(frame) => frame.len(),
                Outbound::Snapshot(snapshot) => snapshot.shared.len() + ITEM_OVERHEAD,
                Outbound::ResumePage(page) => entries(&page.entries),
                Outbound::Filled(filled) => {
                    filled.page.as_ref().map_or(0, |(page, _)| entries(page))
                }
                _ => 0,
            }
    }
}

/// A resume of `guild` from seq `after`.
#[derive(Debug)]
pub struct ResumeBegin {
    pub guild: Arc<str>,
    pub after: u64,
}

/// A page of a replay; `done` on the last one.
#[derive(Debug)]
pub struct ResumePage {
    pub guild: Arc<str>,
    pub entries: Vec<Arc<WireEntry>>,
    pub gap: bool,
    pub done: bool,
}

/// What a gap fetch read: the entries and whether there are more (`None`: the read failed).
#[derive(Debug)]
pub struct Filled {
    pub fetch: Fetch,
    pub page: Option<(Vec<Arc<WireEntry>>, bool)>,
}

/// A guild joined or left.
#[derive(Debug)]
pub struct Membership {
    pub guild: String,
    pub joined: bool,
}

/// What a transport writes.
#[derive(Debug)]
pub enum Write {
    /// A `message` frame; `live` when it came from a feed (for the delivery latency).
    Message {
        entry: Arc<WireEntry>,
        live: bool,
    },
    Frame(ServerFrame),
    Shared(Arc<SharedFrame>),
}

/// One connection's outbound core: the sequencer and the effects it asks for.
pub struct Outbox {
    sequencer: Sequencer<Arc<WireEntry>>,
    handle: ConnHandle,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    out: Vec<Out<Arc<WireEntry>>>,
}

impl Outbox {
    pub fn new<'a>(
        handle: ConnHandle,
        guilds: impl IntoIterator<Item = &'a str>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Outbox {
            sequencer: Sequencer::new(handle.is_admin(), guilds),
            handle,
            bus,
            metrics,
            out: Vec::new(),
        }
    }

    /// Applies one queue item, appending what to write to `writes`.
    pub fn apply(&mut self, item: Outbound, writes: &mut Vec<Write>) {
        let mut live = false;
        match item {
            Outbound::Frame(frame) => return writes.push(Write::Frame(*frame)),
            Outbound::Shared(frame) => return writes.push(Write::Shared(frame)),
            Outbound::Snapshot(snapshot) => return writes.push(Write::Frame(snapshot.frame())),
            Outbound::Live(entry) => {
                live = true;
                self.sequencer.live(entry, &mut self.out);
            }
            Outbound::ResumeBegin(begin) => self.sequencer.resume_begin(&begin.guild, begin.after),
            Outbound::ResumePage(page) => {
                let ResumePage {
                    guild,
                    entries,
                    gap,
                    done,
                } = *page;
                self.sequencer
                    .resume_page(&guild, entries, gap, done, &mut self.out);
            }
            Outbound::Filled(filled) => match filled.page {
                Some((entries, more)) => {
                    self.sequencer
                        .fill(&filled.fetch, entries, more, &mut self.out)
                }
                None => self.sequencer.fill_failed(&filled.fetch, &mut self.out),
            },
            Outbound::Membership(change) if change.joined => self.sequencer.join(&change.guild),
            Outbound::Membership(change) => self.sequencer.leave(&change.guild),
            Outbound::Resync => self.sequencer.resync(&mut self.out),
        }
        for out in self.out.drain(..) {
            match out {
                Out::Write(entry) => writes.push(Write::Message { entry, live }),
                Out::Resumed {
                    guild,
                    replayed,
                    gap,
                } => writes.push(Write::Frame(ServerFrame::Resumed(Resumed {
                    guild_id: guild.to_string(),
                    replayed,
                    gap,
                }))),
                Out::Fetch(fetch) => {
                    self.metrics.gap_fills.inc();
                    spawn_fetch(self.bus.clone(), self.handle.clone(), fetch);
                }
                Out::TooSlow => {
                    if self.handle.close_first(close_code::TOO_SLOW, "too slow") {
                        self.metrics.slow_closes.inc();
                    }
                }
            }
        }
    }

    /// Drops the scratch space kept between items (called when the queue is empty).
    pub fn idle(&mut self) {
        if self.out.capacity() > 0 {
            self.out = Vec::new();
        }
    }
}

/// Reads the hole a fetch names and feeds the page back through the connection's queue.
fn spawn_fetch(bus: Arc<dyn Bus>, handle: ConnHandle, fetch: Fetch) {
    let span = tracing::debug_span!("gap_fetch", guild = %fetch.guild, after = fetch.after);
    tokio::spawn(
        async move {
            let read = bus
                .read_after(&fetch.guild, fetch.after, FETCH_LIMIT, fetch.visibility)
                .await;
            let page = match read {
                Ok(replay) => Some((
                    replay.entries.into_iter().map(WireEntry::new).collect(),
                    replay.more,
                )),
                Err(error) => {
                    tracing::warn!(%error, "gap fetch failed; the client can resume");
                    None
                }
            };
            handle
                .send(Outbound::Filled(Box::new(Filled { fetch, page })))
                .await;
        }
        .instrument(span),
    );
}
