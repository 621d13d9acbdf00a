/**
 * Shared set-up of the Socket.IO tests: a real gateway (embedded, or distributed with the router
 * and bot workers when NATS_URL and REDIS_URL are set; see ../../browser/lib/gateway.js), users
 * signed in through dev login, and small promise helpers around the real socket.io-client.
 */
import { randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';
import { GatewayProcess, distributedEnv, COOKIE_NAME } from '../../browser/lib/gateway.js';

export { GatewayProcess, distributedEnv, COOKIE_NAME };

export const WAIT_MS = Number(process.env.SOCKETIO_WAIT_MS ?? 15000);

/** A guild id unique to one test run. */
export function guildId(label) {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** Starts a gateway in the mode the environment asks for. */
export async function startGateway(env = {}) {
  return new GatewayProcess({ distributed: distributedEnv(), env }).start();
}

/**
 * A socket.io-client socket to `baseUrl`. `token` goes in the cookie header (`cookie: true`,
 * node has no browser cookie jar) or in `auth.token`; `transports` as socket.io-client takes it.
 */
export function connect(baseUrl, { token, via = 'cookie', transports = ['websocket'], upgrade = true, extraHeaders = {}, ...rest } = {}) {
  const headers = { ...extraHeaders };
  if (token && via === 'cookie') headers.cookie = `${COOKIE_NAME}=${token}`;
  return io(baseUrl, {
    transports,
    upgrade,
    extraHeaders: headers,
    auth: token && via === 'auth' ? { token } : undefined,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    forceNew: true,
    ...rest,
  });
}

/** Resolves with the args of the first `event`, rejecting after WAIT_MS. */
export function once(emitter, event, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** Connects and waits for `connect` (rejects on `connect_error`). */
export async function connected(socket) {
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not connected in time')), WAIT_MS);
    socket.once('connect', () => { clearTimeout(timer); resolve(); });
    socket.once('connect_error', (err) => { clearTimeout(timer); reject(err); });
  });
  return socket;
}

/** Emits `chat:message` and resolves with the ack. */
export function send(socket, payload) {
  return socket.timeout(WAIT_MS).emitWithAck('chat:message', payload);
}

/** Collects every `chat:message` payload a socket receives (with the raw args). */
export function collect(socket) {
  const seen = [];
  const waiters = new Set();
  socket.on('chat:message', (...args) => {
    seen.push(args[0]);
    for (const w of waiters) w.check();
  });
  const waitFor = (predicate, ms = WAIT_MS) => new Promise((resolve, reject) => {
    const w = {
      check: () => {
        const hit = seen.find(predicate);
        if (hit) { waiters.delete(w); clearTimeout(timer); resolve(hit); }
      },
    };
    const timer = setTimeout(() => { waiters.delete(w); reject(new Error(`no matching chat:message within ${ms} ms; saw ${JSON.stringify(seen.map((m) => m.text))}`)); }, ms);
    waiters.add(w);
    w.check();
  });
  return { seen, waitFor };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn`; on failure adds the gateway's recent output to the error. */
export async function withOutput(gateways, fn) {
  try {
    return await fn();
  } catch (err) {
    const report = [gateways].flat().map((g) => g.output().slice(-4000)).join('\n');
    err.message += `\n--- gateway output (tail) ---\n${report}`;
    throw err;
  }
}

/**
 * Two gateways sharing one deployment when distributed (the second without workers); in
 * embedded mode both names are the same gateway.
 */
export async function startPair(env = {}) {
  const first = await startGateway(env);
  if (!distributedEnv()) return [first, first];
  const second = await new GatewayProcess({ secret: first.secret, distributed: distributedEnv(), withWorkers: false, env }).start();
  return [first, second];
}

/** Posts a message over the HTTP API. */
export async function post(gateway, token, guild, body) {
  const res = await fetch(`${gateway.baseUrl}/api/guilds/${guild}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}
