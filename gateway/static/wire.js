/**
 * wire.js — the pure parts of the chat client that follow the wire contract (DESIGN.md): the
 * connection states and close codes, the reconnect backoff, client message ids, the handshake
 * URL (`?encoding=`, `?resume=g1:42,g2:17`) and the HTTP error shape. No I/O, no state;
 * `chat-client.js` re-exports the public ones.
 */

/** Connection states. */
export const States = Object.freeze({
  IDLE: 'idle',
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  RECONNECTING: 'reconnecting',
  OFFLINE: 'offline',
  SIGNED_OUT: 'signed_out',
  CLOSED: 'closed',
});

/** Close codes of the contract that change what the client does. */
export const CloseCodes = Object.freeze({
  SERVER_RESTARTING: 1012,
  SESSION_EXPIRED: 4001,
  POLICY_VIOLATION: 4008,
  TOO_SLOW: 4009,
  CLIENT_DEAD_CONNECTION: 4000,
});

/** Guilds one handshake names at most (the gateway refuses more than 256). */
export const MAX_HANDSHAKE_POSITIONS = 256;
/** A guild id the handshake can carry: `[A-Za-z0-9_-]`, 1–64 (what the gateway accepts). */
const GUILD_ID = /^[A-Za-z0-9_-]{1,64}$/;

const MESSAGE_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Delay before reconnect attempt `attempt` (0-based): full jitter,
 * `random(0, min(maxMs, minMs * factor^attempt))`.
 */
export function backoffDelay(attempt, { minMs, maxMs, factor }, random = Math.random) {
  const ceiling = Math.min(maxMs, minMs * Math.pow(factor, Math.max(0, attempt)));
  return Math.floor(random() * ceiling);
}

/** A fresh client messageId: `[A-Za-z0-9_]`, 26 characters, never ending in `-bot`. */
export function newMessageId() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let tail = '';
  for (const b of bytes) tail += MESSAGE_ID_ALPHABET[b % MESSAGE_ID_ALPHABET.length];
  return `c${Date.now().toString(36)}_${tail}`;
}

/** Whether `id` is a valid client messageId (1–64 of `[A-Za-z0-9_-]`, not ending in `-bot`). */
export function isValidMessageId(id) {
  return typeof id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(id) && !id.endsWith('-bot');
}

/**
 * The positions a handshake names: every guild's last seen seq, and 0 for a guild of the last
 * hello with nothing seen yet. At most `MAX_HANDSHAKE_POSITIONS`, valid guild ids only.
 */
export function pickHandshakePositions(positions, helloGuilds) {
  const all = new Map(positions);
  for (const guildId of helloGuilds) if (!all.has(guildId)) all.set(guildId, 0);
  const named = new Map();
  for (const [guildId, seq] of all) {
    if (named.size === MAX_HANDSHAKE_POSITIONS) break;
    if (GUILD_ID.test(guildId)) named.set(guildId, seq);
  }
  return named;
}

/** `/ws` on the page's origin (ws: or wss: like the page). */
export function defaultWsUrl() {
  const loc = globalThis.location;
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

/** Adds the handshake's `resume` parameter (`g1:42,g2:17`) when `positions` names any guild. */
export function withResume(url, positions) {
  if (positions.size === 0) return url;
  const u = new URL(url);
  u.searchParams.set('resume', [...positions].map(([guildId, seq]) => `${guildId}:${seq}`).join(','));
  return u.toString();
}

/** `url` with `?encoding=` set unless it has one. */
export function withEncoding(url, encoding) {
  const u = new URL(url, globalThis.location?.href);
  if (!u.searchParams.has('encoding')) u.searchParams.set('encoding', encoding);
  return u.toString();
}

/** An Error with `code` (the body's `error`, else `http_<status>`) and `status`. */
export async function httpError(res) {
  let code = `http_${res.status}`;
  try {
    code = (await res.json()).error ?? code;
  } catch {
    // not JSON: keep the status
  }
  const err = new Error(code);
  err.code = code;
  err.status = res.status;
  return err;
}

/** Why a signed-in user's upgrade may have been refused, from the `/api/me` body. */
export async function refusalHint(res, fallback) {
  try {
    const me = await res.json();
    const guilds = me?.guilds ?? [];
    if (!me?.admin && guilds.length === 0) return 'no_guild_context';
  } catch {
    // keep the fallback
  }
  return fallback;
}
