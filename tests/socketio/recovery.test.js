// Connection state recovery: the client's pid + offset, on any gateway, within
// SOCKETIO_RECOVERY_SECS; missed messages once, in order; otherwise recovered === false and
// nothing replayed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startPair, startGateway, distributedEnv, connect, connected, collect, guildId, post, sleep, once, withOutput,
} from './lib/harness.js';

let gwA;
let gwB;
before(async () => { [gwA, gwB] = await startPair(); });
after(async () => { await gwA?.stop(); if (gwB !== gwA) await gwB?.stop(); });

/** A connected socket that has received one message (so it holds an offset). */
async function primed(gateway, token, g, transports) {
  const socket = await connected(connect(gateway.baseUrl, { token, transports }));
  const inbox = collect(socket);
  assert.equal(socket.recovered, false);
  const { body } = await post(gateway, token, g, { text: 'before' });
  await inbox.waitFor((m) => m.messageId === body.messageId);
  return { socket, inbox };
}

for (const transports of [['websocket'], ['polling']]) {
  test(`${transports[0]}: recovery after socket.io.engine.close()`, () => withOutput([gwA, gwB], async () => {
    const g = guildId('rec');
    const { token } = await gwA.devLogin({ name: 'Ann', guilds: [g] });
    const { socket, inbox } = await primed(gwA, token, g, transports);
    try {
      socket.io.reconnectionDelay(1000);
      socket.io.reconnectionDelayMax(1000);
      const reconnected = once(socket, 'connect');
      socket.io.engine.close();
      const missed = [];
      for (let i = 0; i < 3; i++) missed.push((await post(gwB, token, g, { text: `missed ${i}` })).body.messageId);
      await reconnected;
      assert.equal(socket.recovered, true);
      const live = (await post(gwA, token, g, { text: 'after' })).body.messageId;
      await inbox.waitFor((m) => m.messageId === live);
      const ids = inbox.seen.map((m) => m.messageId).filter((id) => missed.includes(id) || id === live);
      assert.deepEqual(ids, [...missed, live], 'missed messages once, in order, before live ones');
      const seqs = inbox.seen.map((m) => m.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    } finally {
      socket.close();
    }
  }));
}

test('an unknown pid is not recovered and nothing is replayed', () => withOutput(gwA, async () => {
  const g = guildId('pid');
  const { token } = await gwA.devLogin({ name: 'Ann', guilds: [g] });
  const { socket, inbox } = await primed(gwA, token, g, ['websocket']);
  try {
    socket.disconnect();
    await post(gwA, token, g, { text: 'while away' });
    socket._pid = 'forged.00112233445566778899aabbccddeeff';
    socket.connect();
    await once(socket, 'connect');
    assert.equal(socket.recovered, false);
    await sleep(500);
    assert.ok(!inbox.seen.some((m) => m.text === 'while away'));
  } finally {
    socket.close();
  }
}));

test('beyond SOCKETIO_RECOVERY_SECS nothing is recovered', () => withOutput(gwA, async () => {
  const short = await startGateway({ SOCKETIO_RECOVERY_SECS: '1' });
  try {
    const g = guildId('late');
    const { token } = await short.devLogin({ name: 'Ann', guilds: [g] });
    const { socket, inbox } = await primed(short, token, g, ['websocket']);
    socket.disconnect();
    await post(short, token, g, { text: 'too old' });
    await sleep(2500);
    socket.connect();
    await once(socket, 'connect');
    assert.equal(socket.recovered, false);
    await sleep(500);
    assert.ok(!inbox.seen.some((m) => m.text === 'too old'));
    socket.close();
  } finally {
    await short.stop();
  }
}));

test('a second recovery does not replay the first one again', () => withOutput(gwA, async () => {
  const g = guildId('twice');
  const { token } = await gwA.devLogin({ name: 'Ann', guilds: [g] });
  const { socket, inbox } = await primed(gwA, token, g, ['websocket']);
  try {
    for (const round of [1, 2]) {
      socket.disconnect();
      await post(gwA, token, g, { text: `away ${round}` });
      socket.connect();
      await once(socket, 'connect');
      assert.equal(socket.recovered, true, `round ${round}`);
      await inbox.waitFor((m) => m.text === `away ${round}`);
    }
    await sleep(300);
    assert.deepEqual(inbox.seen.map((m) => m.text), ['before', 'away 1', 'away 2']);
  } finally {
    socket.close();
  }
}));

test('distributed: recovery after the gateway was killed', { skip: !distributedEnv() && 'embedded mode' }, () => withOutput([gwA, gwB], async () => {
  const g = guildId('kill');
  const { token } = await gwB.devLogin({ name: 'Ann', guilds: [g] });
  const { socket, inbox } = await primed(gwB, token, g, ['websocket']);
  try {
    socket.io.reconnectionDelay(300);
    await gwB.crash();
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push((await post(gwA, token, g, { text: `during crash ${i}` })).body.messageId);
    const reconnected = once(socket, 'connect', 30000);
    await gwB.restart();
    await reconnected;
    assert.equal(socket.recovered, true);
    await inbox.waitFor((m) => m.messageId === missed[2]);
    assert.deepEqual(inbox.seen.map((m) => m.messageId).filter((id) => missed.includes(id)), missed);
  } finally {
    socket.close();
  }
}));
