// Delivery on the Socket.IO path: a socket.io client and a /ws client in the same guild (on
// different gateways when distributed) see each other's messages; admin-only never reaches a
// non-admin; the bot's reply arrives as a chat:message from the bot; a change of the user's
// guilds is followed like on /ws.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPair, connect, connected, send, collect, guildId, sleep, withOutput, post, once, WAIT_MS } from './lib/harness.js';
import { wsClient } from './lib/ws-client.js';

let gwA;
let gwB;
before(async () => { [gwA, gwB] = await startPair(); });
after(async () => { await gwA?.stop(); if (gwB !== gwA) await gwB?.stop(); });

test('socket.io and /ws clients see each other', () => withOutput([gwA, gwB], async () => {
  const g = guildId('x');
  const ann = await gwA.devLogin({ name: 'Ann', guilds: [g] });
  const bob = await gwA.devLogin({ name: 'Bob', guilds: [g] });
  const sio = await connected(connect(gwA.baseUrl, { token: ann.token, transports: ['polling'] }));
  const ws = await wsClient(gwB.baseUrl, bob.token);
  try {
    const inbox = collect(sio);
    const ack = await send(sio, { guildId: g, text: 'from socket.io' });
    assert.equal(ack.ok, true);
    await ws.waitFor((f) => f.type === 'message' && f.message.messageId === ack.messageId && f.seq === ack.seq);
    const wsAck = await ws.send({ guildId: g, text: 'from /ws' });
    assert.equal(wsAck.type, 'ack');
    const got = await inbox.waitFor((m) => m.text === 'from /ws');
    assert.equal(got.seq, wsAck.seq);
    assert.equal(got.from.name, 'Bob');
  } finally {
    sio.close();
    ws.close();
  }
}));

test('admin-only reaches admins only, on both paths', () => withOutput([gwA, gwB], async () => {
  const g = guildId('adm');
  const admin = await gwA.devLogin({ name: 'Root', role: 'admin', guilds: [] });
  const member = await gwA.devLogin({ name: 'Ann', guilds: [g] });
  const adminSio = await connected(connect(gwB.baseUrl, { token: admin.token }));
  const memberSio = await connected(connect(gwA.baseUrl, { token: member.token, transports: ['polling'] }));
  const memberWs = await wsClient(gwB.baseUrl, member.token);
  try {
    const adminInbox = collect(adminSio);
    const memberInbox = collect(memberSio);
    const secret = await send(adminSio, { guildId: g, text: 'admins only', adminOnly: true });
    assert.equal(secret.ok, true);
    const seen = await adminInbox.waitFor((m) => m.text === 'admins only');
    assert.equal(seen.adminOnly, true);
    assert.equal(seen.from.color, '#ef4444');
    const open = await send(adminSio, { guildId: g, text: 'everyone' });
    await memberInbox.waitFor((m) => m.text === 'everyone');
    await memberWs.waitFor((f) => f.type === 'message' && f.message.text === 'everyone');
    await sleep(300);
    assert.ok(!memberInbox.seen.some((m) => m.adminOnly), 'socket.io member got an admin-only message');
    assert.ok(!memberWs.messages().some((m) => m.adminOnly), '/ws member got an admin-only message');
    assert.ok(open.seq > secret.seq);
  } finally {
    adminSio.close();
    memberSio.close();
    memberWs.close();
  }
}));

test('a bot request gets the bot reply as a chat:message from the bot', () => withOutput([gwA, gwB], async () => {
  const g = guildId('bot');
  const ann = await gwA.devLogin({ name: 'Ann', guilds: [g] });
  const sio = await connected(connect(gwB.baseUrl, { token: ann.token }));
  try {
    const inbox = collect(sio);
    const ack = await send(sio, { guildId: g, text: 'hey @slimy what is up' });
    assert.equal(ack.ok, true);
    const reply = await inbox.waitFor((m) => m.messageId === `${ack.messageId}-bot`, 30000);
    assert.deepEqual(reply.from, { id: 'bot', name: 'slimy.ai', role: 'bot', color: '#22c55e' });
    assert.equal(reply.guildId, g);
    assert.equal(reply.adminOnly, false);
    assert.ok(reply.seq > ack.seq);
  } finally {
    sio.close();
  }
}));

/** The gateway's `chat_gateway_sends_total` for one outcome. */
async function sendsTotal(gw, outcome) {
  const text = await (await fetch(`${gw.opsUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('chat_gateway_sends_total{') && l.includes(`outcome="${outcome}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('each socket.io send is counted once in chat_gateway_sends_total', () => withOutput([gwA], async () => {
  const g = guildId('count');
  const ann = await gwA.devLogin({ name: 'Ann', guilds: [g] });
  const sio = await connected(connect(gwA.baseUrl, { token: ann.token }));
  try {
    const [acksBefore, emptyBefore] = [await sendsTotal(gwA, 'ack'), await sendsTotal(gwA, 'empty_message')];
    for (const text of ['one', 'two', 'three']) {
      assert.equal((await send(sio, { guildId: g, text })).ok, true);
    }
    assert.equal((await send(sio, { guildId: g, text: '  ' })).code, 'empty_message');
    assert.equal(await sendsTotal(gwA, 'ack') - acksBefore, 3);
    assert.equal(await sendsTotal(gwA, 'empty_message') - emptyBefore, 1);
  } finally {
    sio.close();
  }
}));

test('a change of guilds is followed: one lost goes quiet, one gained flows, none left ends the socket', () => withOutput([gwA, gwB], async () => {
  const [keep, lose, gain] = [guildId('keep'), guildId('lose'), guildId('gain')];
  const id = guildId('ann');
  const ann = await gwA.devLogin({ id, name: 'Ann', guilds: [keep, lose] });
  const bob = await gwA.devLogin({ name: 'Bob', guilds: [keep, lose, gain] });
  const sio = await connected(connect(gwB.baseUrl, { token: ann.token }));
  try {
    const inbox = collect(sio);
    await gwA.devLogin({ id, name: 'Ann', guilds: [keep, gain] });
    // The socket follows both changes at once: when the gained guild flows, the lost one is left.
    const deadline = Date.now() + WAIT_MS;
    for (let n = 1; ; n += 1) {
      const text = `gained ${n}`;
      assert.equal((await post(gwA, bob.token, gain, { text })).status, 201);
      const arrived = await inbox.waitFor((m) => m.text === text, 300).then(() => true, () => false);
      if (arrived) break;
      assert.ok(Date.now() < deadline, 'the gained guild never reached the socket');
    }
    await post(gwA, bob.token, lose, { text: 'after leaving' });
    await post(gwA, bob.token, keep, { text: 'still here' });
    await inbox.waitFor((m) => m.text === 'still here');
    await sleep(200);
    assert.ok(!inbox.seen.some((m) => m.text === 'after leaving'), 'a lost guild kept flowing');
    const ended = once(sio, 'disconnect');
    await gwA.devLogin({ id, name: 'Ann', guilds: [] });
    assert.deepEqual((await ended)[0], 'io server disconnect');
  } finally {
    sio.close();
  }
}));
