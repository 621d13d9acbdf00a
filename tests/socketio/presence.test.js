// Presence and typing on the Socket.IO endpoint, as on /ws (DESIGN.md: events `presence`,
// `presence:diff`, `chat:typing` with the /ws frames' payloads without `type`): a snapshot per
// guild after connect, diffs when users come and go (also across paths, with a /ws client),
// `chat:typing` in with an ack, forwarded to the other members only, throttled to one per 2 s,
// refused with the original strings for a missing or foreign guild.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, connect, connected, once, guildId, sleep, withOutput } from './lib/harness.js';
import { wsClient } from './lib/ws-client.js';

let gw;
before(async () => { gw = await startGateway({ PRESENCE_LINGER_MS: '200' }); });
after(async () => { await gw?.stop(); });

/** Records every event of `name` on a socket.io socket, with a wait for a matching one. */
function record(socket, name) {
  const seen = [];
  const waiters = new Set();
  socket.on(name, (payload) => {
    seen.push(payload);
    for (const w of waiters) w.check();
  });
  const waitFor = (predicate, ms = 15000) => new Promise((resolve, reject) => {
    const w = {
      check: () => {
        const hit = seen.find(predicate);
        if (hit) { waiters.delete(w); clearTimeout(timer); resolve(hit); }
      },
    };
    const timer = setTimeout(() => { waiters.delete(w); reject(new Error(`no matching ${name} within ${ms} ms; saw ${JSON.stringify(seen)}`)); }, ms);
    waiters.add(w);
    w.check();
  });
  return { seen, waitFor };
}

/** Connects a socket with its presence and typing recorded from the start. */
async function join(token, transports = ['websocket']) {
  const socket = connect(gw.baseUrl, { token, transports });
  const events = {
    presence: record(socket, 'presence'),
    diff: record(socket, 'presence:diff'),
    typing: record(socket, 'chat:typing'),
  };
  await connected(socket);
  return { socket, ...events };
}

const typing = (socket, payload) => socket.timeout(10000).emitWithAck('chat:typing', payload);

test('a snapshot after connect, diffs as users come and go, across Socket.IO and /ws', () => withOutput(gw, async () => {
  const g = guildId('pres');
  const a = await gw.devLogin({ name: 'Ann', guilds: [g] });
  const b = await gw.devLogin({ name: 'Bob', guilds: [g] });
  const c = await gw.devLogin({ name: 'Cy', guilds: [g] });
  const ann = await join(a.token);
  let bob;
  let cy;
  try {
    const first = await ann.presence.waitFor((p) => p.guildId === g);
    assert.equal(first.type, undefined, 'the payload has no `type`');
    assert.equal(first.available, true);
    assert.equal(first.truncated, false);
    assert.deepEqual(first.online.map((u) => u.id), [a.user.id]);
    assert.equal(first.online[0].color, '#3b82f6');

    bob = await join(b.token, ['polling']);
    const mine = await bob.presence.waitFor((p) => p.guildId === g);
    assert.equal(mine.count, 2);
    assert.deepEqual(mine.online.map((u) => u.id).sort(), [a.user.id, b.user.id].sort());
    const joined = await ann.diff.waitFor((d) => d.joined.some((u) => u.id === b.user.id));
    assert.equal(joined.count, 2);

    cy = await wsClient(gw.baseUrl, c.token);
    await ann.diff.waitFor((d) => d.joined.some((u) => u.id === c.user.id) && d.count === 3);

    bob.socket.close();
    const left = await ann.diff.waitFor((d) => d.left.includes(b.user.id));
    assert.equal(left.count, 2);
    await cy.waitFor((f) => f.type === 'presence_diff' && f.left.includes(b.user.id));
  } finally {
    ann.socket.close(); bob?.socket.close(); cy?.close();
  }
}));

test('chat:typing goes to the other members (Socket.IO and /ws), not back, at most one per 2 s', () => withOutput(gw, async () => {
  const g = guildId('typ');
  const a = await gw.devLogin({ name: 'Ann', guilds: [g] });
  const b = await gw.devLogin({ name: 'Bob', guilds: [g] });
  const c = await gw.devLogin({ name: 'Cy', guilds: [g] });
  const ann = await join(a.token);
  await ann.presence.waitFor((p) => p.guildId === g);
  const bob = await join(b.token, ['polling']);
  await bob.presence.waitFor((p) => p.guildId === g);
  const cy = await wsClient(gw.baseUrl, c.token);
  try {
    await ann.diff.waitFor((d) => d.count === 3);
    assert.deepEqual(await typing(ann.socket, { guildId: g }), { ok: true });
    const notice = await bob.typing.waitFor((t) => t.guildId === g);
    assert.deepEqual(notice, { guildId: g, user: { id: a.user.id, name: 'Ann', role: 'member', color: '#3b82f6' } });
    const wsNotice = await cy.waitFor((f) => f.type === 'typing' && f.guildId === g);
    assert.equal(wsNotice.user.id, a.user.id);
    // Throttled: a second one right away is accepted but not forwarded.
    assert.deepEqual(await typing(ann.socket, { guildId: g }), { ok: true });
    // From /ws to Socket.IO.
    cy.socket.send(JSON.stringify({ type: 'typing', guildId: g }));
    await bob.typing.waitFor((t) => t.user.id === c.user.id);
    await ann.typing.waitFor((t) => t.user.id === c.user.id);
    await sleep(800);
    assert.equal(bob.typing.seen.filter((t) => t.user.id === a.user.id).length, 1, 'throttled to one per 2 s');
    assert.equal(ann.typing.seen.filter((t) => t.user.id === a.user.id).length, 0, 'not sent back to the typer');
    // After the window, forwarded again.
    await sleep(1400);
    assert.deepEqual(await typing(ann.socket, { guildId: g }), { ok: true });
    await bob.typing.waitFor(() => bob.typing.seen.filter((t) => t.user.id === a.user.id).length === 2);
  } finally {
    ann.socket.close(); bob.socket.close(); cy.close();
  }
}));

test('chat:typing refusals: another guild → forbidden_guild, no guild → missing_guild, not an object → bad_frame', () => withOutput(gw, async () => {
  const g = guildId('typno');
  const other = guildId('typother');
  const a = await gw.devLogin({ name: 'Ann', guilds: [g] });
  const o = await gw.devLogin({ name: 'Oz', guilds: [other] });
  const ann = await join(a.token);
  const oz = await join(o.token);
  try {
    assert.deepEqual(await typing(ann.socket, { guildId: other }), {
      error: 'You do not have access to this guild.', code: 'forbidden_guild',
    });
    assert.deepEqual(await typing(ann.socket, {}), { error: 'Missing guild.', code: 'missing_guild' });
    assert.deepEqual(await typing(ann.socket, 'g'), { error: 'bad_frame', code: 'bad_frame' });
    // Without an ack: nothing comes back, the socket goes on, and nobody in the other guild hears it.
    ann.socket.emit('chat:typing', { guildId: other });
    await sleep(500);
    assert.equal(oz.typing.seen.length, 0);
    assert.equal(ann.socket.connected, true);
    // Presence of a guild is shown only to its members.
    assert.ok(ann.presence.seen.every((p) => p.guildId === g));
    assert.ok(oz.presence.seen.every((p) => p.guildId === other));
  } finally {
    ann.socket.close(); oz.socket.close();
  }
}));

test('presence survives a reconnect: the snapshot comes again', () => withOutput(gw, async () => {
  const g = guildId('presre');
  const a = await gw.devLogin({ name: 'Ann', guilds: [g] });
  const ann = await join(a.token);
  try {
    await ann.presence.waitFor((p) => p.guildId === g);
    const again = once(ann.socket, 'connect', 15000);
    ann.socket.io.engine.close();
    await again;
    await ann.presence.waitFor(() => ann.presence.seen.filter((p) => p.guildId === g).length === 2);
  } finally {
    ann.socket.close();
  }
}));
