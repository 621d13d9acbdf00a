/**
 * The client library's pure parts, run in node (no browser, no gateway): full-jitter backoff and
 * client message ids, the handshake's resume positions. The connection behaviour is tested in the browser against a real gateway.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backoffDelay, isValidMessageId, newMessageId, ChatClient, MAX_HANDSHAKE_POSITIONS, withResume,
} from '../../gateway/static/chat-client.js';

const POLICY = { minMs: 500, maxMs: 20000, factor: 2 };

test('backoff is full jitter under min*factor^n, capped at max', () => {
  const ceilings = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000];
  ceilings.forEach((ceiling, attempt) => {
    assert.equal(backoffDelay(attempt, POLICY, () => 0), 0);
    assert.equal(backoffDelay(attempt, POLICY, () => 0.999999), ceiling - 1);
    assert.equal(backoffDelay(attempt, POLICY, () => 0.5), ceiling / 2);
  });
});

test('backoff with the real random source stays in range', () => {
  for (let attempt = 0; attempt < 12; attempt += 1) {
    for (let i = 0; i < 200; i += 1) {
      const d = backoffDelay(attempt, POLICY);
      assert.ok(d >= 0 && d < Math.min(20000, 500 * 2 ** attempt), `attempt ${attempt}: ${d}`);
    }
  }
});

test('client message ids are valid, unique and never end in -bot', () => {
  const ids = new Set();
  for (let i = 0; i < 2000; i += 1) {
    const id = newMessageId();
    assert.ok(isValidMessageId(id), id);
    assert.match(id, /^[A-Za-z0-9_-]{1,64}$/);
    assert.ok(!id.endsWith('-bot'));
    ids.add(id);
  }
  assert.equal(ids.size, 2000);
});

test('message id validation follows the contract', () => {
  assert.ok(isValidMessageId('a'));
  assert.ok(isValidMessageId('x'.repeat(64)));
  assert.ok(!isValidMessageId(''));
  assert.ok(!isValidMessageId('x'.repeat(65)));
  assert.ok(!isValidMessageId('hello-bot'));
  assert.ok(!isValidMessageId('has space'));
  assert.ok(!isValidMessageId('ümlaut'));
});

test('only the json encoding is accepted', () => {
  assert.throws(() => new ChatClient({ url: 'ws://127.0.0.1:1/ws', encoding: 'msgpack' }), /only json/);
});

test('a send before connecting is kept pending with a valid id', () => {
  const client = new ChatClient({ url: 'ws://127.0.0.1:1/ws' });
  const out = client.send({ guildId: 'g1', text: 'hi' });
  assert.equal(out.status, 'pending');
  assert.ok(isValidMessageId(out.messageId));
  assert.equal(client.pending.get(out.messageId), out);
  assert.equal(client.send({ guildId: 'g1', text: 'again', messageId: out.messageId }), out);
  assert.throws(() => client.send({ guildId: 'g1', text: 'x', messageId: 'nope-bot' }), /invalid messageId/);
});

test('the handshake names every position, 0 for known guilds not seen yet, valid ids only, capped', () => {
  const client = new ChatClient({ url: 'ws://127.0.0.1:1/ws' });
  assert.deepEqual([...client.handshakePositions()], [], 'nothing to name on the first connection');
  assert.equal(withResume('ws://h/ws?encoding=json', new Map()), 'ws://h/ws?encoding=json');
  client.positions.set('g1', 42);
  client.positions.set('g2', 17);
  client.positions.set('bad,id', 3);
  client.hello = { guilds: ['g1', 'g3'] };
  const named = client.handshakePositions();
  assert.deepEqual([...named], [['g1', 42], ['g2', 17], ['g3', 0]]);
  const url = new URL(withResume('ws://h/ws?encoding=json', named));
  assert.equal(url.searchParams.get('encoding'), 'json');
  assert.equal(url.searchParams.get('resume'), 'g1:42,g2:17,g3:0');

  for (let i = 0; i < 300; i += 1) client.positions.set(`x${i}`, i);
  assert.equal(client.handshakePositions().size, MAX_HANDSHAKE_POSITIONS);
});

test('after hello, only guilds the handshake did not name are resumed by frame', () => {
  const client = new ChatClient({ url: 'ws://127.0.0.1:1/ws' });
  const written = [];
  client.write = (frame) => written.push(frame);
  client.history = () => Promise.resolve({ messages: [] });
  client.positions.set('g1', 42);
  client.positions.set('over', 5);
  client.sendResume(['g1', 'over', 'fresh'], new Map([['g1', 42]]));
  assert.deepEqual(written, [{ type: 'resume', positions: { over: 5 } }]);
  written.length = 0;
  client.sendResume(['g1'], new Map([['g1', 42], ['over', 5]]));
  assert.deepEqual(written, [], 'no resume frame when the handshake named everything');
});
