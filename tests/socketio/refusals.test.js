// Every refusal is one CONNECT_ERROR whose message is the /ws error code: `connect_error` fires
// once and the client does not try again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, connect, sleep, guildId, WAIT_MS, withOutput } from './lib/harness.js';

let gw;
let strict;
before(async () => {
  gw = await startGateway({ MAX_CONNECTIONS: '1' });
  strict = await startGateway({ ALLOWED_ORIGINS: 'https://admin.example' });
});
after(async () => { await gw?.stop(); await strict?.stop(); });

/** Connects and resolves with every connect_error message seen within a settle time. */
async function refusals(baseUrl, options, settleMs = 1500) {
  const socket = connect(baseUrl, options);
  const messages = [];
  let connects = 0;
  socket.on('connect', () => { connects += 1; });
  socket.on('connect_error', (err) => messages.push(err.message));
  const deadline = Date.now() + WAIT_MS;
  while (messages.length === 0 && connects === 0 && Date.now() < deadline) await sleep(50);
  await sleep(settleMs);
  const active = socket.active;
  socket.close();
  return { messages, connects, active };
}

for (const transports of [['websocket'], ['polling']]) {
  const t = transports[0];

  test(`${t}: no token → not_authorized, once`, () => withOutput(gw, async () => {
    const r = await refusals(gw.baseUrl, { transports });
    assert.deepEqual(r, { messages: ['not_authorized'], connects: 0, active: false });
  }));

  test(`${t}: a bad token (cookie and auth.token) → not_authorized`, () => withOutput(gw, async () => {
    const expired = gw.mintToken({ sub: 'u1', name: 'A', role: 'member', exp: Math.floor(Date.now() / 1000) - 3600 });
    for (const [token, via] of [['garbage', 'cookie'], ['garbage', 'auth'], [expired, 'auth']]) {
      const r = await refusals(gw.baseUrl, { transports, token, via }, 500);
      assert.deepEqual(r.messages, ['not_authorized'], `${via} ${token.slice(0, 10)}`);
    }
  }));

  test(`${t}: a member without guilds → no_guild_context`, () => withOutput(gw, async () => {
    const { token } = await gw.devLogin({ name: 'Lonely', guilds: [] });
    const r = await refusals(gw.baseUrl, { transports, token }, 500);
    assert.deepEqual(r.messages, ['no_guild_context']);
  }));

  test(`${t}: an Origin not allowed → origin_not_allowed; an allowed one connects`, () => withOutput(strict, async () => {
    const { token } = await strict.devLogin({ name: 'Ann', guilds: [guildId('o')] });
    const bad = await refusals(strict.baseUrl, { transports, token, extraHeaders: { origin: 'https://evil.example' } }, 500);
    assert.deepEqual(bad.messages, ['origin_not_allowed']);
    const good = await refusals(strict.baseUrl, { transports, token, extraHeaders: { origin: 'https://admin.example' } }, 200);
    assert.deepEqual(good, { messages: [], connects: 1, active: true });
  }));

  test(`${t}: a full node → unavailable`, () => withOutput(gw, async () => {
    const { token } = await gw.devLogin({ name: 'Ann', guilds: [guildId('full')] });
    const first = connect(gw.baseUrl, { token, transports });
    await new Promise((resolve) => first.once('connect', resolve));
    try {
      const r = await refusals(gw.baseUrl, { transports, token }, 500);
      assert.deepEqual(r.messages, ['unavailable']);
    } finally {
      first.close();
    }
  }));

  test(`${t}: another namespace → Invalid namespace`, () => withOutput(gw, async () => {
    const { token } = await gw.devLogin({ name: 'Ann', guilds: [guildId('ns')] });
    const r = await refusals(`${gw.baseUrl}/admin`, { transports, token }, 500);
    assert.deepEqual(r.messages, ['Invalid namespace']);
  }));
}
