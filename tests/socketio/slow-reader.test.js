// A client that stops reading is closed like on /ws, and nothing of it is kept: a socket.io-client
// on the websocket transport whose TCP socket is paused while its guild is busy is closed as too
// slow (4009: its queue filled, or no byte was taken for WRITE_TIMEOUT_MS), the other member gets
// every message, and once it reads again it reconnects and recovers exactly what it missed; a
// long-polling session that stops polling is closed too: as too slow when its guild is busy, by
// the ping timeout (2 × HEARTBEAT_MS) when it is quiet. Either way its Engine.IO session, its hub
// connection and its sid are gone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startGateway, connect, connected, send, collect, once, guildId, sleep, withOutput, COOKIE_NAME,
} from './lib/harness.js';

const TEXT = 'x'.repeat(1900);
const BUSY_ENV = {
  OUTBOUND_QUEUE: '64',
  WRITE_TIMEOUT_MS: '1000',
  SEND_RATE_PER_SEC: '1000000',
  SEND_BURST: '1000000',
  USER_SEND_RATE_PER_SEC: '0',
};

let busy;
let quiet;
before(async () => {
  busy = await startGateway(BUSY_ENV);
  quiet = await startGateway({ HEARTBEAT_MS: '1000' });
});
after(async () => { await busy?.stop(); await quiet?.stop(); });

/** One series of the gateway's /metrics (summed over its labels matching `labels`). */
async function metric(gw, name, labels = '') {
  const text = await (await fetch(`${gw.opsUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || (line.startsWith(`${name}{`) && line.includes(labels))) {
      sum += Number(line.split(' ').pop());
    }
  }
  return sum;
}

const sessions = (gw) => metric(gw, 'chat_gateway_socketio_sessions');
const connections = (gw) => metric(gw, 'chat_gateway_connections');
const slowCloses = (gw) => metric(gw, 'chat_gateway_slow_consumer_closes_total');

async function until(predicate, what, ms = 30000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await sleep(100);
  }
  assert.fail(`${what} within ${ms} ms`);
}

/** Sends until the gateway has closed one more slow consumer than `before`, then 20 more. */
async function floodUntilSlowClose(gw, sender, g, before) {
  const acked = [];
  let after = null;
  while (after === null || after > 0) {
    const acks = await Promise.all(Array.from({ length: 10 }, () => send(sender, { guildId: g, text: TEXT })));
    for (const ack of acks) {
      assert.equal(ack.ok, true, JSON.stringify(ack));
      acked.push(ack.seq);
    }
    if (after !== null) after -= 10;
    else if (await slowCloses(gw) > before) after = 20;
    assert.ok(acked.length < 20000, 'the slow reader was never closed');
  }
  return acked.sort((a, b) => a - b);
}

test('websocket: a client that stops reading is closed as too slow, then recovers what it missed', () => withOutput(busy, async () => {
  const g = guildId('slow');
  const [a, f, s] = await Promise.all(['Ann', 'Fay', 'Sol'].map((name) => busy.devLogin({ name, guilds: [g] })));
  const sender = await connected(connect(busy.baseUrl, { token: a.token }));
  const fast = await connected(connect(busy.baseUrl, { token: f.token }));
  const slow = await connected(connect(busy.baseUrl, { token: s.token }));
  try {
    const fastInbox = collect(fast);
    const slowInbox = collect(slow);
    assert.equal((await send(sender, { guildId: g, text: 'before the pause' })).ok, true);
    await slowInbox.waitFor((m) => m.text === 'before the pause');
    const before = await slowCloses(busy);
    const closedBefore = await metric(busy, 'chat_gateway_connections_closed_total', 'code="4009"');
    const tcp = slow.io.engine.transport.ws?._socket;
    assert.ok(tcp, 'the websocket transport runs on the ws package (node)');
    tcp.pause();
    const acked = await floodUntilSlowClose(busy, sender, g, before);
    assert.equal(await metric(busy, 'chat_gateway_connections_closed_total', 'code="4009"'), closedBefore + 1);
    // The other member got every message, in order, none twice.
    await fastInbox.waitFor((m) => m.seq === acked.at(-1));
    const fastSeqs = fastInbox.seen.filter((m) => m.text === TEXT).map((m) => m.seq);
    assert.deepEqual(fastSeqs, acked);
    // The closed session is gone at once (only the three live ones are held).
    await until(async () => (await sessions(busy)) === 2 && (await connections(busy)) === 2, 'the slow session was dropped');
    // Reading again: what the kernel buffered arrives, then the end of the transport; the client
    // reconnects with its pid and offset and recovers the rest.
    const reconnected = once(slow, 'connect', 30000);
    tcp.resume();
    const [reason] = await once(slow, 'disconnect', 30000);
    assert.match(reason, /transport (close|error)/);
    await reconnected;
    assert.equal(slow.recovered, true, 'recovered after the slow close');
    await slowInbox.waitFor((m) => m.seq === acked.at(-1));
    const slowSeqs = slowInbox.seen.filter((m) => m.text === TEXT).map((m) => m.seq);
    assert.deepEqual(slowSeqs, acked, 'each missed message once, in order');
    assert.equal(await sessions(busy), 3);
  } finally {
    sender.close(); fast.close(); slow.close();
  }
}));

const url = (gw, query) => `${gw.baseUrl}/socket.io/?EIO=4&transport=polling${query}`;

/** A raw polling session with its socket connected (CONNECT answered), that then never polls. */
async function pollingSession(gw, token) {
  const headers = { cookie: `${COOKIE_NAME}=${token}` };
  const open = await (await fetch(url(gw, ''), { headers })).text();
  const { sid } = JSON.parse(open.slice(1));
  const post = await fetch(url(gw, `&sid=${sid}`), { method: 'POST', headers, body: '40' });
  assert.equal(await post.text(), 'ok');
  const answer = await (await fetch(url(gw, `&sid=${sid}`), { headers })).text();
  assert.match(answer, /^40\{/);
  return { sid, headers };
}

async function assertGone(gw, { sid, headers }) {
  const res = await fetch(url(gw, `&sid=${sid}`), { headers });
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 1, message: 'Session ID unknown' });
}

test('polling: a session that stops polling while its guild is busy is closed as too slow', () => withOutput(busy, async () => {
  const g = guildId('slowpoll');
  const [a, s] = await Promise.all(['Ann', 'Sol'].map((name) => busy.devLogin({ name, guilds: [g] })));
  const sender = await connected(connect(busy.baseUrl, { token: a.token }));
  try {
    const baseSessions = await sessions(busy);
    const before = await slowCloses(busy);
    const idle = await pollingSession(busy, s.token);
    assert.equal(await sessions(busy), baseSessions + 1);
    await floodUntilSlowClose(busy, sender, g, before);
    await until(async () => (await sessions(busy)) === baseSessions, 'the session was dropped');
    await assertGone(busy, idle);
    assert.equal(await connections(busy), baseSessions);
  } finally {
    sender.close();
  }
}));

test('polling: a session that stops polling in a quiet guild is closed by the ping timeout', () => withOutput(quiet, async () => {
  const g = guildId('idlepoll');
  const { token } = await quiet.devLogin({ name: 'Sol', guilds: [g] });
  const idle = await pollingSession(quiet, token);
  assert.equal(await sessions(quiet), 1);
  assert.equal(await connections(quiet), 1);
  // Ping interval 1 s + timeout 1 s; a margin for a loaded machine.
  await until(async () => (await sessions(quiet)) === 0, 'the silent session was dropped', 15000);
  assert.equal(await connections(quiet), 0);
  await assertGone(quiet, idle);
}));
