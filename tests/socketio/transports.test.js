// The three ways a socket.io-client connects (websocket only, polling only, polling then the
// upgrade), with the token in the cookie or in `auth.token`, each sending and receiving.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, connect, connected, send, collect, guildId, withOutput } from './lib/harness.js';

let gw;
before(async () => { gw = await startGateway(); });
after(async () => { await gw?.stop(); });

const cases = [
  { name: 'websocket only, cookie', transports: ['websocket'], via: 'cookie', expect: 'websocket' },
  { name: 'websocket only, auth.token', transports: ['websocket'], via: 'auth', expect: 'websocket' },
  { name: 'polling only, cookie', transports: ['polling'], via: 'cookie', expect: 'polling' },
  { name: 'polling only, auth.token', transports: ['polling'], via: 'auth', expect: 'polling' },
  { name: 'polling then upgrade, cookie', transports: ['polling', 'websocket'], via: 'cookie', expect: 'websocket' },
  { name: 'polling then upgrade, auth.token', transports: ['polling', 'websocket'], via: 'auth', expect: 'websocket' },
];

for (const c of cases) {
  test(c.name, () => withOutput(gw, async () => {
    const g = guildId('t');
    const { token, user } = await gw.devLogin({ name: 'Ann', guilds: [g] });
    const socket = await connected(connect(gw.baseUrl, { token, via: c.via, transports: c.transports }));
    try {
      const inbox = collect(socket);
      if (c.transports.length > 1 && socket.io.engine.transport.name !== 'websocket') {
        await new Promise((resolve) => socket.io.engine.once('upgrade', resolve));
      }
      const ack = await send(socket, { guildId: g, text: `hello ${c.name}` });
      assert.equal(ack.ok, true);
      assert.equal(typeof ack.messageId, 'string');
      assert.ok(Number.isInteger(ack.seq) && ack.seq >= 1);
      const message = await inbox.waitFor((m) => m.text === `hello ${c.name}`);
      assert.deepEqual(Object.keys(message).sort(), ['adminOnly', 'from', 'guildId', 'messageId', 'seq', 'text', 'ts']);
      assert.equal(message.messageId, ack.messageId);
      assert.equal(message.seq, ack.seq);
      assert.deepEqual(message.from, { id: user.id, name: 'Ann', role: 'member', color: '#3b82f6' });
      assert.equal(socket.io.engine.transport.name, c.expect);
    } finally {
      socket.close();
    }
  }));
}

test('the heartbeat keeps an idle polling session open across ping intervals', async () => {
  const quick = await startGateway({ HEARTBEAT_MS: '300' });
  try {
    const g = guildId('hb');
    const { token } = await quick.devLogin({ name: 'Ann', guilds: [g] });
    const socket = await connected(connect(quick.baseUrl, { token, transports: ['polling'] }));
    let disconnects = 0;
    socket.on('disconnect', () => { disconnects += 1; });
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(disconnects, 0);
    assert.equal((await send(socket, { guildId: g, text: 'still here' })).ok, true);
    socket.close();
  } finally {
    await quick.stop();
  }
});
