// Every ack of a refused chat:message carries the original system's text and our code; a flood
// hits the rate limit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, connect, connected, send, guildId, withOutput } from './lib/harness.js';

let gw;
let g;
let ann;
let bob;
before(async () => {
  // The text limit is the router's default (2000): in distributed mode the router is its own process.
  gw = await startGateway({ SEND_RATE_PER_SEC: '5', SEND_BURST: '10' });
  g = guildId('err');
  const a = await gw.devLogin({ name: 'Ann', guilds: [g] });
  const b = await gw.devLogin({ name: 'Bob', guilds: [g] });
  ann = await connected(connect(gw.baseUrl, { token: a.token }));
  bob = await connected(connect(gw.baseUrl, { token: b.token, transports: ['polling'] }));
});
after(async () => { ann?.close(); bob?.close(); await gw?.stop(); });

const table = [
  ['empty text', { guildId: 'G', text: '   ' }, 'Message cannot be empty.', 'empty_message'],
  ['no text', { guildId: 'G' }, 'Message cannot be empty.', 'empty_message'],
  ['no guild', { text: 'hi' }, 'Missing guild.', 'missing_guild'],
  ['another guild', { guildId: 'not-mine', text: 'hi' }, 'You do not have access to this guild.', 'forbidden_guild'],
  ['admin-only by a member', { guildId: 'G', text: 'hi', adminOnly: true }, 'Only admins can send admin-only messages.', 'admin_only_forbidden'],
  ['too long', { guildId: 'G', text: 'x'.repeat(2001) }, 'message_too_long', 'message_too_long'],
  ['a field of the wrong type', { guildId: 'G', text: 5 }, 'bad_frame', 'bad_frame'],
  ['a bad messageId', { guildId: 'G', text: 'hi', messageId: 'x-bot' }, 'bad_frame', 'bad_frame'],
];

for (const [name, payload, error, code] of table) {
  test(`${name} → ${code}`, () => withOutput(gw, async () => {
    const body = { ...payload, ...(payload.guildId === 'G' ? { guildId: g } : {}) };
    assert.deepEqual(await send(ann, body), { error, code });
  }));
}

test('a payload that is not an object → bad_frame', () => withOutput(gw, async () => {
  for (const payload of ['text', 42, null, ['a']]) {
    assert.deepEqual(await ann.timeout(5000).emitWithAck('chat:message', payload), { error: 'bad_frame', code: 'bad_frame' });
  }
}));

test('an unknown event with an ack → bad_frame; the socket stays usable', () => withOutput(gw, async () => {
  assert.deepEqual(await ann.timeout(5000).emitWithAck('chat:nope', {}), { error: 'bad_frame', code: 'bad_frame' });
  ann.emit('chat:nope-no-ack', { a: 1 });
  assert.equal((await send(ann, { guildId: g, text: 'after unknown' })).ok, true);
}));

test("another user's messageId → duplicate_message_id; a resend returns the first ack", () => withOutput(gw, async () => {
  const id = `mid-${Date.now()}`;
  const first = await send(ann, { guildId: g, text: 'mine', messageId: id });
  assert.equal(first.ok, true);
  assert.deepEqual(await send(ann, { guildId: g, text: 'again', messageId: id }), first);
  assert.deepEqual(await send(bob, { guildId: g, text: 'shadow', messageId: id }), {
    error: 'duplicate_message_id', code: 'duplicate_message_id',
  });
}));

test('a flood hits the rate limit', () => withOutput(gw, async () => {
  const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => send(bob, { guildId: g, text: `flood ${i}` })));
  const limited = acks.filter((a) => a.code === 'rate_limited');
  assert.ok(limited.length >= 10, `only ${limited.length} of 30 rate limited`);
  assert.deepEqual(limited[0], { error: 'rate_limited', code: 'rate_limited' });
  assert.ok(acks.some((a) => a.ok), 'the burst went through');
}));
