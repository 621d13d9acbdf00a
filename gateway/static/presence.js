/**
 * presence.js — presence and typing in the chat client (DESIGN.md "Presence and typing").
 *
 * `PresenceBook` is the pure state: per guild the users online (from the `presence` snapshot and
 * the `presence_diff` frames after it, set semantics, `count` authoritative) and who is typing
 * (each `typing` frame shows its user for `typingShowMs`, a message from them clears it).
 * `TypingThrottle` keeps the client's own `typing` frames to the contract's one per guild per
 * 2 s. `PresenceTracker` glues both to a `ChatClient`: frames in, events out, one timer for the
 * typing expiry. `typingText` is the line a page shows ("Ann and Bob are typing…").
 * No I/O here: the clock and the timer functions are injected.
 */

/** The contract's window: the gateway forwards one `typing` per user per guild per 2 s. */
export const TYPING_SEND_INTERVAL_MS = 2000;
/**
 * How long a `typing` frame shows its user: three send intervals, so a typist whose frame was
 * dropped by the gateway's throttle (clock jitter) does not flicker.
 */
export const TYPING_SHOW_MS = 6000;

/** A guild's presence as the client knows it. */
function emptyGuild() {
  return { count: 0, truncated: false, available: true, online: new Map() };
}

/** Pure presence and typing state of one client. */
export class PresenceBook {
  constructor({ now = Date.now, typingShowMs = TYPING_SHOW_MS } = {}) {
    this.now = now;
    this.typingShowMs = typingShowMs;
    /** guildId → {count, truncated, available, online: Map(userId → user)} */
    this.guilds = new Map();
    /** guildId → Map(userId → {user, until}) */
    this.typists = new Map();
  }

  /** A `presence` frame: replaces what was known of the guild. */
  applySnapshot({ guildId, count, truncated, available, online }) {
    if (!guildId) return null;
    const g = emptyGuild();
    for (const user of Array.isArray(online) ? online : []) if (user?.id != null) g.online.set(String(user.id), user);
    g.available = available !== false;
    g.count = Number.isFinite(count) ? count : g.online.size;
    g.truncated = Boolean(truncated) || g.count > g.online.size;
    this.guilds.set(guildId, g);
    return this.get(guildId);
  }

  /** A `presence_diff` frame: joined users added (or updated), left ids removed; idempotent. */
  applyDiff({ guildId, count, joined, left }) {
    if (!guildId) return null;
    const g = this.guilds.get(guildId) ?? emptyGuild();
    for (const id of Array.isArray(left) ? left : []) g.online.delete(String(id));
    for (const user of Array.isArray(joined) ? joined : []) if (user?.id != null) g.online.set(String(user.id), user);
    g.count = Number.isFinite(count) ? count : g.online.size;
    g.truncated = g.count > g.online.size;
    g.available = true;
    this.guilds.set(guildId, g);
    return this.get(guildId);
  }

  /** `{guildId, count, truncated, available, online:[user…] sorted by name}`, or null. */
  get(guildId) {
    const g = this.guilds.get(guildId);
    if (!g) return null;
    const online = [...g.online.values()].sort((a, b) => String(a.name ?? '').localeCompare(String(b.name ?? '')));
    return { guildId, count: g.count, truncated: g.truncated, available: g.available, online };
  }

  /** Whether `userId` is listed online in `guildId`. */
  isOnline(guildId, userId) {
    return Boolean(this.guilds.get(guildId)?.online.has(String(userId)));
  }

  /** Drops the presence of guilds not in `guildIds` (a new hello); true when any was dropped. */
  retain(guildIds) {
    const keep = new Set(guildIds);
    let changed = false;
    for (const id of [...this.guilds.keys()]) if (!keep.has(id)) changed = this.guilds.delete(id) || changed;
    for (const id of [...this.typists.keys()]) if (!keep.has(id)) changed = this.typists.delete(id) || changed;
    return changed;
  }

  /** A `typing` frame; `selfId` is never shown. True when the guild's typing list changed. */
  noteTyping({ guildId, user }, selfId) {
    if (!guildId || user?.id == null || String(user.id) === String(selfId)) return false;
    const typists = this.typists.get(guildId) ?? new Map();
    const id = String(user.id);
    const isNew = !typists.has(id);
    typists.delete(id); // re-insert: the list is in order of the latest frame
    typists.set(id, { user, until: this.now() + this.typingShowMs });
    this.typists.set(guildId, typists);
    return isNew;
  }

  /** Stops showing `userId` as typing in `guildId` (they sent a message); true when shown. */
  stopTyping(guildId, userId) {
    const typists = this.typists.get(guildId);
    if (!typists?.delete(String(userId))) return false;
    if (typists.size === 0) this.typists.delete(guildId);
    return true;
  }

  /** The users typing in `guildId` now, oldest first. */
  typing(guildId) {
    const now = this.now();
    return [...(this.typists.get(guildId)?.values() ?? [])].filter((t) => t.until > now).map((t) => t.user);
  }

  /** Removes expired typists; returns the guild ids whose typing list changed. */
  expire() {
    const now = this.now();
    const changed = [];
    for (const [guildId, typists] of this.typists) {
      const before = typists.size;
      for (const [id, t] of typists) if (t.until <= now) typists.delete(id);
      if (typists.size !== before) changed.push(guildId);
      if (typists.size === 0) this.typists.delete(guildId);
    }
    return changed;
  }

  /** Milliseconds until the next typist expires, or null when nobody is typing. */
  nextExpiryIn() {
    let next = null;
    for (const typists of this.typists.values()) {
      for (const t of typists.values()) if (next == null || t.until < next) next = t.until;
    }
    return next == null ? null : Math.max(0, next - this.now());
  }

  /** Forgets every typist (the connection is gone); returns the guild ids that had some. */
  clearTyping() {
    const had = [...this.typists.keys()];
    this.typists.clear();
    return had;
  }
}

/** At most one `typing` frame per guild per `intervalMs` from this client. */
export class TypingThrottle {
  constructor({ intervalMs = TYPING_SEND_INTERVAL_MS, now = Date.now } = {}) {
    this.intervalMs = intervalMs;
    this.now = now;
    this.last = new Map();
  }

  /** Whether a `typing` for `guildId` may go out now (and counts it when so). */
  allow(guildId) {
    const now = this.now();
    const last = this.last.get(guildId);
    if (last != null && now < last + this.intervalMs) return false;
    this.last.set(guildId, now);
    return true;
  }

  /** Forgets the window of `guildId` (a message was sent: the next keystroke is new typing). */
  reset(guildId) {
    this.last.delete(guildId);
  }
}

/** "Ann is typing…", "Ann and Bob are typing…", "Ann, Bob and Cid are typing…", "Several people are typing…". */
export function typingText(users) {
  const names = users.map((u) => String(u?.name ?? 'Someone'));
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  return 'Several people are typing…';
}

/**
 * Presence and typing of one `ChatClient`: feeds frames into a `PresenceBook`, emits `presence`
 * and `typing` events through `emit`, writes the client's own `typing` frames through `write`,
 * and runs one timer (`setTimeout`/`clearTimeout` injected) for the typing expiry.
 */
export class PresenceTracker {
  constructor({ emit, write, selfId, now = Date.now, typingShowMs, typingIntervalMs, timers = globalThis }) {
    this.emit = emit;
    this.write = write;
    this.selfId = selfId;
    this.timers = timers;
    this.timer = null;
    this.book = new PresenceBook({ now, typingShowMs });
    this.throttle = new TypingThrottle({ now, intervalMs: typingIntervalMs });
  }

  onHello(guildIds) {
    const typed = this.book.clearTyping();
    this.book.retain(guildIds);
    for (const guildId of typed) this.emitTyping(guildId);
    this.schedule();
  }

  onSnapshot(frame) {
    const view = this.book.applySnapshot(frame);
    if (view) this.emit('presence', { ...view, joined: view.online, left: [], snapshot: true });
  }

  onDiff(frame) {
    const view = this.book.applyDiff(frame);
    if (!view) return;
    const joined = Array.isArray(frame.joined) ? frame.joined : [];
    const left = Array.isArray(frame.left) ? frame.left.map(String) : [];
    this.emit('presence', { ...view, joined, left, snapshot: false });
    let stopped = false;
    for (const id of left) stopped = this.book.stopTyping(frame.guildId, id) || stopped;
    if (stopped) this.emitTyping(frame.guildId);
  }

  onTyping(frame) {
    if (!this.book.noteTyping(frame, this.selfId())) return this.schedule();
    this.emitTyping(frame.guildId);
    this.schedule();
  }

  /** A message arrived: its sender is no longer typing there. */
  onMessage(message) {
    if (message?.guildId && message.from?.id != null && this.book.stopTyping(message.guildId, message.from.id)) {
      this.emitTyping(message.guildId);
    }
  }

  /** The connection is gone: nobody is shown typing any more. */
  onDisconnect() {
    for (const guildId of this.book.clearTyping()) this.emitTyping(guildId);
    this.schedule();
  }

  /** The client's own keystroke in `guildId`: a `typing` frame unless throttled. */
  typing(guildId) {
    if (!guildId || !this.throttle.allow(guildId)) return false;
    if (this.write({ type: 'typing', guildId })) return true;
    this.throttle.reset(guildId);
    return false;
  }

  emitTyping(guildId) {
    this.emit('typing', { guildId, users: this.book.typing(guildId) });
  }

  schedule() {
    if (this.timer != null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    const wait = this.book.nextExpiryIn();
    if (wait == null) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      for (const guildId of this.book.expire()) this.emitTyping(guildId);
      this.schedule();
    }, wait + 1);
  }

  stop() {
    if (this.timer != null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }
}
