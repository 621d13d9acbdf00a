/**
 * chat-client.js — the browser client of the guild chat gateway (wire contract: DESIGN.md).
 *
 * A dependency-free ES module (with `./wire.js`, its pure wire helpers, and `./presence.js`). A `ChatClient` holds one WebSocket to `/ws`, reconnects with
 * exponential backoff and full jitter, resumes every guild from the last `seq` it saw (named in
 * the handshake, `/ws?resume=g1:42`, so replay comes before live and nothing waits), dedups
 * messages by `messageId`, sends optimistically with client-made message ids (re-sent with the
 * same id after a reconnect until acknowledged), detects dead connections with its own pings,
 * and follows the browser's online/offline and visibility events. It never reconnects after an
 * auth refusal: it asks `GET /api/me`, and a 401 (or close code 4001) puts it in `signed_out`.
 *
 * Events (a `CustomEvent`, payload in `event.detail`; `client.on(type, fn)` is a shortcut):
 *   state    {state, previous, nextAttemptAt?, reason?, code?}
 *   hello    the server's hello frame
 *   message  {seq, message, own}            once per messageId
 *   ack      {messageId, seq, ref, outgoing}
 *   error    {code, message, ref?, guildId?, messageId?, outgoing?}
 *   resumed  {guildId, replayed, gap}
 *   outgoing {outgoing}                      an optimistic send changed (pending/sent/failed)
 *   presence {guildId, count, truncated, available, online, joined, left, snapshot}
 *                                            a guild's presence changed (`online` is the whole
 *                                            current list, `joined`/`left` what changed)
 *   typing   {guildId, users}                who is typing in a guild now (never this user)
 * Presence and typing state: `presence(guildId)`, `typingUsers(guildId)`; own typing:
 * `typing(guildId)` (throttled to one frame per guild per 2 s, as the gateway forwards).
 */

import { PresenceTracker } from './presence.js';
import {
  CloseCodes, States, backoffDelay, defaultWsUrl, httpError, isValidMessageId, newMessageId,
  pickHandshakePositions, refusalHint, withEncoding, withResume,
} from './wire.js';

export {
  CloseCodes, MAX_HANDSHAKE_POSITIONS, States, backoffDelay, isValidMessageId, newMessageId, withResume,
} from './wire.js';

const DEFAULTS = Object.freeze({
  encoding: 'json',
  reconnect: { minMs: 500, maxMs: 20000, factor: 2 },
  connectTimeoutMs: 10000,
  stableAfterMs: 10000,
  restartJitterMs: 500,
  seenLimit: 10000,
});

/** A reconnecting, resuming chat connection. */
export class ChatClient extends EventTarget {
  constructor(options = {}) {
    super();
    const encoding = options.encoding ?? DEFAULTS.encoding;
    if (encoding !== 'json') throw new TypeError(`unsupported encoding: ${encoding} (only json)`);
    this.options = {
      ...DEFAULTS,
      ...options,
      reconnect: { ...DEFAULTS.reconnect, ...(options.reconnect ?? {}) },
    };
    this.url = withEncoding(options.url ?? defaultWsUrl(), encoding);
    this.apiBase = options.apiBase ?? '';
    this.random = options.random ?? Math.random;
    this.state = States.IDLE;
    this.stateInfo = { state: States.IDLE };
    /** The last hello, its user and guild ids. */
    this.hello = null;
    /** Last seq seen per guild id — what `resume` sends. */
    this.positions = new Map();
    /** Optimistic sends not yet acknowledged, by messageId, in send order. */
    this.pending = new Map();
    /** Every send made through this client, by messageId (pending, sent or failed). */
    this.outgoing = new Map();
    /** How many WebSocket connections were opened (attempted), for diagnostics. */
    this.connectAttempts = 0;
    this.ws = null;
    this.attempt = 0;
    this.refCounter = 0;
    this.refs = new Map();
    this.seen = new Set();
    this.timers = { reconnect: null, connect: null, heartbeat: null };
    this.presenceTracker = new PresenceTracker({
      emit: (type, detail) => this.emit(type, detail),
      write: (frame) => this.state === States.CONNECTED && this.write(frame),
      selfId: () => this.hello?.user?.id,
      typingShowMs: this.options.typingShowMs,
    });
    this.listenToBrowser();
  }

  /** Shortcut for addEventListener; returns a function that removes the listener. */
  on(type, fn) {
    const handler = (event) => fn(event.detail, event);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  /** Starts (or restarts, e.g. after signing in) the connection now. */
  connect() {
    this.clearTimer('reconnect');
    this.attempt = 0;
    if (this.ws) return;
    this.open();
  }

  /** Closes the connection for good; no reconnect until `connect()` is called again. */
  close() {
    this.clearAllTimers();
    this.dropSocket(1000, 'client closed');
    this.setState(States.CLOSED);
  }

  /** Removes the browser listeners and closes; the client is unusable afterwards. */
  destroy() {
    this.close();
    for (const [target, type, fn] of this.browserListeners ?? []) target.removeEventListener(type, fn);
    this.browserListeners = [];
  }

  /**
   * Sends a message optimistically. Returns the outgoing record
   * `{messageId, guildId, text, adminOnly, requestBot, status:'pending', createdAt}`; it becomes
   * `sent` (with `seq`) on ack or `failed` (with `error`) on an error, and is re-sent with the
   * same messageId after every reconnect until then.
   */
  send({ guildId, text, adminOnly = false, requestBot = false, messageId = newMessageId() }) {
    if (!isValidMessageId(messageId)) throw new TypeError(`invalid messageId: ${messageId}`);
    const existing = this.outgoing.get(messageId);
    if (existing) return existing;
    const outgoing = {
      messageId, guildId, text, adminOnly: Boolean(adminOnly), requestBot: Boolean(requestBot),
      status: 'pending', seq: null, error: null, createdAt: new Date().toISOString(),
    };
    this.outgoing.set(messageId, outgoing);
    this.pending.set(messageId, outgoing);
    this.emit('outgoing', { outgoing });
    if (this.state === States.CONNECTED) this.transmit(outgoing);
    return outgoing;
  }

  /**
   * Tells the guild's other members that this user is typing. Call it on every keystroke: at
   * most one frame per guild per 2 s goes out (what the gateway forwards). True when one went.
   */
  typing(guildId) {
    return this.presenceTracker.typing(guildId);
  }

  /** A guild's presence: `{guildId, count, truncated, available, online:[user…]}` or null. */
  presence(guildId) {
    return this.presenceTracker.book.get(guildId);
  }

  /** The users typing in a guild now (never this user), oldest first. */
  typingUsers(guildId) {
    return this.presenceTracker.book.typing(guildId);
  }

  /** Sends a failed message again with its original messageId. */
  retry(messageId) {
    const outgoing = this.outgoing.get(messageId);
    if (!outgoing || outgoing.status !== 'failed') return outgoing ?? null;
    Object.assign(outgoing, { status: 'pending', error: null });
    this.pending.set(messageId, outgoing);
    this.emit('outgoing', { outgoing });
    if (this.state === States.CONNECTED) this.transmit(outgoing);
    return outgoing;
  }

  /**
   * One page of a guild's history, newest first: `{messages:[{seq, message}], hasMore,
   * nextBefore?}`; page on with `nextBefore` while `hasMore`.
   * Without `before` (the newest page), the seqs also become the resume position. Pages are not
   * deduplicated against `message` events: merge them by messageId.
   */
  async history(guildId, { before, limit = 50 } = {}) {
    const params = new URLSearchParams({ limit: String(limit) });
    if (before != null) params.set('before', String(before));
    const res = await this.api(`/api/guilds/${encodeURIComponent(guildId)}/messages?${params}`);
    if (!res.ok) throw await httpError(res);
    const page = await res.json();
    if (before == null) for (const { seq } of page.messages ?? []) this.notePosition(guildId, seq);
    return page;
  }

  /** `GET /api/me`: `{user, guilds, admin}`, or null when not signed in (401). */
  async me() {
    const res = await this.api('/api/me');
    if (res.status === 401) return null;
    if (!res.ok) throw await httpError(res);
    return res.json();
  }

  /** `fetch` against the gateway's HTTP API with the session cookie. */
  api(path, init = {}) {
    return fetch(`${this.apiBase}${path}`, { credentials: 'include', ...init });
  }

  // ---- connection lifecycle -------------------------------------------------------------

  open() {
    this.clearTimer('reconnect');
    if (this.isOffline()) return this.setState(States.OFFLINE);
    this.setState(States.CONNECTING);
    this.connectAttempts += 1;
    let ws;
    const named = this.options.resumeInHandshake === false ? new Map() : this.handshakePositions();
    try {
      ws = new WebSocket(withResume(this.url, named));
    } catch (err) {
      return this.scheduleReconnect({ reason: String(err?.message ?? err) });
    }
    const conn = { ws, named, opened: false, openedAt: 0, lastRxAt: 0, lastPingAt: 0, heartbeatMs: 0 };
    this.ws = ws;
    this.conn = conn;
    ws.onopen = () => {
      conn.opened = true;
      conn.openedAt = Date.now();
      conn.lastRxAt = conn.openedAt;
    };
    ws.onmessage = (event) => this.onFrame(conn, event.data);
    ws.onclose = (event) => this.onClose(conn, event.code, event.reason);
    ws.onerror = () => {}; // followed by close, which carries what there is to know
    this.setTimer('connect', () => this.onDead(conn, 'connect timeout'), this.options.connectTimeoutMs);
  }

  onFrame(conn, data) {
    if (conn.ws !== this.ws) return;
    conn.lastRxAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    const handler = FRAME_HANDLERS[frame.type];
    if (handler) handler.call(this, frame, conn);
  }

  onHello(frame, conn) {
    this.clearTimer('connect');
    this.hello = frame;
    conn.heartbeatMs = this.options.heartbeatMs ?? frame.heartbeatMs ?? 25000;
    this.startHeartbeat(conn);
    this.sendResume(frame.guilds ?? [], conn.named);
    this.setState(States.CONNECTED);
    this.presenceTracker.onHello(frame.guilds ?? []);
    this.emit('hello', frame);
    for (const outgoing of this.pending.values()) this.transmit(outgoing);
  }

  onMessage(frame) {
    const { seq, message } = frame;
    if (!message) return;
    this.notePosition(message.guildId, seq);
    const outgoing = this.outgoing.get(message.messageId);
    if (outgoing && message.from?.id === this.hello?.user?.id) this.settle(outgoing, seq);
    if (!this.remember(message.messageId)) return;
    this.presenceTracker.onMessage(message);
    this.emit('message', { seq, message, own: Boolean(outgoing) });
  }

  onAck(frame) {
    this.refs.delete(frame.ref);
    const outgoing = this.outgoing.get(frame.messageId);
    if (outgoing) this.settle(outgoing, frame.seq);
    this.emit('ack', { messageId: frame.messageId, seq: frame.seq, ref: frame.ref, outgoing });
  }

  onError(frame) {
    const messageId = frame.messageId ?? this.refs.get(frame.ref);
    if (frame.ref) this.refs.delete(frame.ref);
    if (frame.code === 'forbidden_guild' && frame.guildId && !frame.ref) this.positions.delete(frame.guildId);
    const outgoing = messageId ? this.outgoing.get(messageId) : undefined;
    if (outgoing && frame.ref) this.fail(outgoing, frame.code, frame.message);
    this.emit('error', { ...frame, messageId, outgoing });
  }

  onClose(conn, code, reason) {
    if (conn.ws !== this.ws) return;
    const lived = conn.opened ? Date.now() - conn.openedAt : 0;
    this.dropSocket();
    if (this.state === States.CLOSED) return;
    if (this.isOffline()) return this.setState(States.OFFLINE);
    if (code === CloseCodes.SESSION_EXPIRED) return this.signOut(reason || 'session expired', code);
    if (lived >= this.options.stableAfterMs && code !== CloseCodes.POLICY_VIOLATION && code !== CloseCodes.TOO_SLOW) {
      this.attempt = 0;
    }
    if (code === CloseCodes.SERVER_RESTARTING) {
      return this.scheduleIn(Math.floor(this.random() * this.options.restartJitterMs), 'server restarting');
    }
    if (!conn.opened) return this.checkAuthThenRetry(`connection refused (${code})`);
    this.scheduleReconnect({ reason: reason || `closed (${code})` });
  }

  /** No traffic for too long (or no hello in time): give the socket up and reconnect. */
  onDead(conn, why) {
    if (conn.ws !== this.ws) return;
    const opened = conn.opened;
    this.dropSocket(CloseCodes.CLIENT_DEAD_CONNECTION, why);
    if (this.isOffline()) return this.setState(States.OFFLINE);
    if (!opened) return this.checkAuthThenRetry(why);
    this.scheduleReconnect({ reason: why });
  }

  /** A connect failed before the upgrade: the browser hides the status, so ask `/api/me`. */
  async checkAuthThenRetry(reason) {
    const generation = this.generation = (this.generation ?? 0) + 1;
    let signedIn = true;
    let refusal = reason;
    try {
      const res = await this.api('/api/me', { signal: AbortSignal.timeout(this.options.connectTimeoutMs) });
      signedIn = res.status !== 401;
      if (res.ok) refusal = await refusalHint(res, reason);
    } catch {
      signedIn = true; // the server is unreachable or silent: keep trying
    }
    if (generation !== this.generation || this.ws || this.state !== States.CONNECTING) return;
    if (!signedIn) return this.signOut('not_authorized');
    this.scheduleReconnect({ reason: refusal });
  }

  /** Stops for good after an auth refusal; `code` is the close code when there was one. */
  signOut(reason, code) {
    this.clearAllTimers();
    for (const outgoing of this.pending.values()) this.fail(outgoing, 'not_authorized', 'Signed out.');
    this.setState(States.SIGNED_OUT, code === undefined ? { reason } : { reason, code });
  }

  scheduleReconnect({ reason }) {
    const delay = backoffDelay(this.attempt, this.options.reconnect, this.random);
    this.attempt += 1;
    this.scheduleIn(delay, reason);
  }

  scheduleIn(delay, reason) {
    const nextAttemptAt = Date.now() + delay;
    this.setState(States.RECONNECTING, { nextAttemptAt, reason });
    this.setTimer('reconnect', () => this.open(), delay);
  }

  /** Reconnects at once if the client is waiting to (used on `online` and on visible). */
  reconnectNow() {
    if (this.ws || this.state === States.SIGNED_OUT || this.state === States.CLOSED || this.state === States.IDLE) return;
    this.open();
  }

  dropSocket(code, reason) {
    const ws = this.ws;
    this.ws = null;
    this.conn = null;
    this.refs.clear();
    this.clearTimer('connect');
    this.clearTimer('heartbeat');
    if (!ws) return;
    this.presenceTracker.onDisconnect();
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (code !== undefined && ws.readyState <= 1) {
      try {
        ws.close(code, reason);
      } catch {
        ws.close();
      }
    }
  }

  // ---- frames out ------------------------------------------------------------------------

  /**
   * The positions named in the handshake (`/ws?resume=g1:42,g2:17`): every guild's last seen
   * seq, and on a reconnect 0 for a guild of the last hello with nothing seen yet (so nothing
   * sent meanwhile is missed). At most `MAX_HANDSHAKE_POSITIONS`, valid guild ids only; the
   * rest go in a `resume` frame after hello.
   */
  handshakePositions() {
    return pickHandshakePositions(this.positions, this.hello?.guilds ?? []);
  }

  /**
   * After hello: guilds already named in the handshake need nothing. A guild of this hello not
   * named there resumes by a `resume` frame when it has a position (more guilds than the
   * handshake takes); without one (the first connection, or a guild new to this user) its
   * position comes from its newest history entry and it is live at once.
   */
  sendResume(guilds, named) {
    const positions = {};
    for (const [guildId, seq] of this.positions) if (!named.has(guildId)) positions[guildId] = seq;
    for (const guildId of guilds) {
      if (named.has(guildId) || guildId in positions) continue;
      this.history(guildId, { limit: 1 }).catch(() => {});
    }
    if (Object.keys(positions).length > 0) this.write({ type: 'resume', positions });
  }

  transmit(outgoing) {
    const ref = `c${++this.refCounter}`;
    this.refs.set(ref, outgoing.messageId);
    this.write({
      type: 'send', ref, guildId: outgoing.guildId, text: outgoing.text,
      adminOnly: outgoing.adminOnly, requestBot: outgoing.requestBot, messageId: outgoing.messageId,
    });
  }

  write(frame) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  startHeartbeat(conn) {
    const tick = Math.max(50, Math.floor(conn.heartbeatMs / 4));
    conn.lastPingAt = Date.now();
    this.clearTimer('heartbeat');
    this.timers.heartbeat = setInterval(() => {
      const now = Date.now();
      if (now - conn.lastRxAt >= 2 * conn.heartbeatMs) return this.onDead(conn, 'no traffic for two heartbeat intervals');
      if (now - conn.lastPingAt >= conn.heartbeatMs) {
        conn.lastPingAt = now;
        this.write({ type: 'ping', ref: `p${++this.refCounter}` });
      }
    }, tick);
  }

  // ---- bookkeeping -------------------------------------------------------------------------

  settle(outgoing, seq) {
    this.pending.delete(outgoing.messageId);
    if (outgoing.status === 'sent') return;
    Object.assign(outgoing, { status: 'sent', seq: seq ?? outgoing.seq, error: null });
    this.emit('outgoing', { outgoing });
  }

  fail(outgoing, code, message) {
    if (outgoing.status === 'sent') return;
    this.pending.delete(outgoing.messageId);
    Object.assign(outgoing, { status: 'failed', error: { code, message } });
    this.emit('outgoing', { outgoing });
  }

  notePosition(guildId, seq) {
    if (!guildId || !Number.isFinite(seq)) return;
    if (seq > (this.positions.get(guildId) ?? 0)) this.positions.set(guildId, seq);
  }

  /** Records a messageId; false when it was already seen. */
  remember(messageId) {
    if (!messageId || this.seen.has(messageId)) return false;
    this.seen.add(messageId);
    if (this.seen.size > this.options.seenLimit) this.seen.delete(this.seen.values().next().value);
    return true;
  }

  setState(state, extra = {}) {
    const previous = this.state;
    this.state = state;
    this.stateInfo = { state, previous, ...extra };
    this.emit('state', this.stateInfo);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  isOffline() {
    return globalThis.navigator?.onLine === false;
  }

  setTimer(name, fn, ms) {
    this.clearTimer(name);
    this.timers[name] = setTimeout(() => {
      this.timers[name] = null;
      fn();
    }, ms);
  }

  clearTimer(name) {
    if (this.timers[name] == null) return;
    clearTimeout(this.timers[name]);
    clearInterval(this.timers[name]);
    this.timers[name] = null;
  }

  clearAllTimers() {
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
    this.presenceTracker.stop();
  }

  listenToBrowser() {
    this.browserListeners = [];
    const win = globalThis.window;
    const doc = globalThis.document;
    if (!win?.addEventListener) return;
    const listen = (target, type, fn) => {
      target.addEventListener(type, fn);
      this.browserListeners.push([target, type, fn]);
    };
    listen(win, 'offline', () => {
      if (this.state === States.SIGNED_OUT || this.state === States.CLOSED || this.state === States.IDLE) return;
      this.clearTimer('reconnect');
      this.dropSocket(1000, 'browser offline');
      this.setState(States.OFFLINE);
    });
    listen(win, 'online', () => {
      this.attempt = 0;
      this.reconnectNow();
    });
    if (doc) {
      listen(doc, 'visibilitychange', () => {
        if (doc.visibilityState === 'visible') this.reconnectNow();
      });
    }
  }
}

const FRAME_HANDLERS = {
  hello: ChatClient.prototype.onHello,
  message: ChatClient.prototype.onMessage,
  ack: ChatClient.prototype.onAck,
  error: ChatClient.prototype.onError,
  resumed(frame) {
    this.emit('resumed', { guildId: frame.guildId, replayed: frame.replayed, gap: frame.gap });
  },
  presence(frame) {
    this.presenceTracker.onSnapshot(frame);
  },
  presence_diff(frame) {
    this.presenceTracker.onDiff(frame);
  },
  typing(frame) {
    this.presenceTracker.onTyping(frame);
  },
  pong() {},
};
