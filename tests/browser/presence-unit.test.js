/**
 * The client's presence and typing state (gateway/static/presence.js), run in node with a fake
 * clock: snapshots and diffs (set semantics, count authoritative, truncation), typing shown for
 * its window and never for oneself, cleared by a message or a leave, the own-typing throttle,
 * the typing line's wording, and the tracker's events through a ChatClient.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PresenceBook, PresenceTracker, TYPING_SEND_INTERVAL_MS, TYPING_SHOW_MS, TypingThrottle, typingText,
} from '../../gateway/static/presence.js';
import { ChatClient } from '../../gateway/static/chat-client.js';

const ann = { id: 'u1', name: 'Ann', role: 'member', color: '#3b82f6' };
const bob = { id: 'u2', name: 'Bob', role: 'member', color: '#3b82f6' };
const cid = { id: 'u3', name: 'Cid', role: 'club', color: '#f59e0b' };

function clock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

test('snapshot then diffs: set semantics, count from the server, sorted by name', () => {
  const book = new PresenceBook();
  book.applySnapshot({ guildId: 'g', count: 2, truncated: false, available: true, online: [bob, ann] });
  assert.deepEqual(book.get('g').online.map((u) => u.name), ['Ann', 'Bob']);
  const cases = [
    // [diff, expected names, expected count]
    [{ joined: [cid], left: [], count: 3 }, ['Ann', 'Bob', 'Cid'], 3],
    [{ joined: [cid], left: [], count: 3 }, ['Ann', 'Bob', 'Cid'], 3], // idempotent
    [{ joined: [], left: ['u2'], count: 2 }, ['Ann', 'Cid'], 2],
    [{ joined: [], left: ['u2'], count: 2 }, ['Ann', 'Cid'], 2],
    [{ joined: [{ ...bob, name: 'Bobby' }], left: ['u1'], count: 2 }, ['Bobby', 'Cid'], 2],
  ];
  for (const [diff, names, count] of cases) {
    const view = book.applyDiff({ guildId: 'g', ...diff });
    assert.deepEqual(view.online.map((u) => u.name), names, JSON.stringify(diff));
    assert.equal(view.count, count);
    assert.equal(view.truncated, false);
  }
  assert.equal(book.get('other'), null);
  assert.ok(book.isOnline('g', 'u3'));
  assert.ok(!book.isOnline('g', 'u1'));
});

test('a large guild: truncated list, exact count; unavailable presence; bad frames ignored', () => {
  const book = new PresenceBook();
  let view = book.applySnapshot({ guildId: 'big', count: 5000, truncated: true, available: true, online: [ann, bob] });
  assert.equal(view.count, 5000);
  assert.ok(view.truncated);
  view = book.applyDiff({ guildId: 'big', count: 5001, joined: [cid], left: [] });
  assert.equal(view.count, 5001);
  assert.ok(view.truncated);
  view = book.applySnapshot({ guildId: 'down', count: 0, truncated: false, available: false, online: [] });
  assert.equal(view.available, false);
  assert.equal(book.applySnapshot({ count: 1 }), null, 'no guildId');
  view = book.applySnapshot({ guildId: 'odd', online: 'nope' });
  assert.deepEqual(view.online, []);
  view = book.applyDiff({ guildId: 'odd', joined: [null, { name: 'no id' }, ann], left: 'x' });
  assert.deepEqual(view.online, [ann]);
  assert.equal(view.count, 1, 'without a count the listed size is used');
});

test('a new hello drops the guilds the connection no longer has', () => {
  const book = new PresenceBook();
  book.applySnapshot({ guildId: 'a', count: 1, online: [ann] });
  book.applySnapshot({ guildId: 'b', count: 1, online: [ann] });
  assert.ok(book.retain(['a']));
  assert.equal(book.get('b'), null);
  assert.ok(book.get('a'));
  assert.ok(!book.retain(['a']));
});

test('typing: shown for its window, never oneself, latest last, cleared by a message', () => {
  const c = clock();
  const book = new PresenceBook({ now: c.now, typingShowMs: 3000 });
  assert.ok(book.noteTyping({ guildId: 'g', user: ann }, 'u9'));
  assert.ok(!book.noteTyping({ guildId: 'g', user: { id: 'u9', name: 'Me' } }, 'u9'), 'own typing is never shown');
  c.t += 1000;
  assert.ok(book.noteTyping({ guildId: 'g', user: bob }, 'u9'));
  assert.deepEqual(book.typing('g').map((u) => u.name), ['Ann', 'Bob']);
  assert.equal(book.nextExpiryIn(), 2000);
  c.t += 500;
  assert.ok(!book.noteTyping({ guildId: 'g', user: ann }, 'u9'), 'a repeat changes no list');
  assert.deepEqual(book.typing('g').map((u) => u.name), ['Bob', 'Ann'], 'ordered by latest frame');
  c.t += 2600; // Bob's frame is 3.1 s old, Ann's 2.6 s
  assert.deepEqual(book.expire(), ['g']);
  assert.deepEqual(book.typing('g').map((u) => u.name), ['Ann']);
  assert.ok(book.stopTyping('g', 'u1'));
  assert.ok(!book.stopTyping('g', 'u1'));
  assert.deepEqual(book.typing('g'), []);
  assert.equal(book.nextExpiryIn(), null);
  assert.ok(!book.noteTyping({ guildId: 'g' }, 'u9'), 'no user: ignored');
});

test('own typing is throttled to one frame per guild per 2 s', () => {
  const c = clock();
  const throttle = new TypingThrottle({ now: c.now });
  const steps = [
    // [advance ms, guild, allowed]
    [0, 'g', true], [100, 'g', false], [0, 'h', true], [1800, 'g', false],
    [100, 'g', true], [TYPING_SEND_INTERVAL_MS - 1, 'g', false], [1, 'g', true],
  ];
  for (const [advance, guild, allowed] of steps) {
    c.t += advance;
    assert.equal(throttle.allow(guild), allowed, `at ${c.t} in ${guild}`);
  }
  throttle.reset('g');
  assert.ok(throttle.allow('g'));
});

test('the typing line', () => {
  const cases = [
    [[], ''],
    [[ann], 'Ann is typing…'],
    [[ann, bob], 'Ann and Bob are typing…'],
    [[ann, bob, cid], 'Ann, Bob and Cid are typing…'],
    [[ann, bob, cid, { id: 'u4', name: 'Dee' }], 'Several people are typing…'],
  ];
  for (const [users, text] of cases) assert.equal(typingText(users), text);
});

test('the tracker emits presence and typing events and expires typists on its timer', () => {
  const c = clock();
  const pending = [];
  const timers = {
    setTimeout: (fn, ms) => { pending.push({ fn, at: c.t + ms }); return pending.length; },
    clearTimeout: (id) => { if (pending[id - 1]) pending[id - 1].fn = null; },
  };
  const events = [];
  const written = [];
  const tracker = new PresenceTracker({
    emit: (type, detail) => events.push([type, detail]), write: (f) => written.push(f) > 0,
    selfId: () => 'u9', now: c.now, timers,
  });
  tracker.onHello(['g']);
  tracker.onSnapshot({ type: 'presence', guildId: 'g', count: 1, online: [ann], available: true, truncated: false });
  tracker.onDiff({ type: 'presence_diff', guildId: 'g', count: 2, joined: [bob], left: [] });
  tracker.onTyping({ type: 'typing', guildId: 'g', user: bob });
  assert.deepEqual(events.map(([t, d]) => [t, d.count ?? d.users.map((u) => u.name)]), [
    ['presence', 1], ['presence', 2], ['typing', ['Bob']],
  ]);
  assert.equal(events[0][1].snapshot, true);
  assert.deepEqual(events[1][1].joined, [bob]);
  events.length = 0;
  c.t += TYPING_SHOW_MS + 1;
  for (const t of pending.splice(0)) if (t.fn && t.at <= c.t) t.fn();
  assert.deepEqual(events, [['typing', { guildId: 'g', users: [] }]]);

  events.length = 0;
  tracker.onTyping({ type: 'typing', guildId: 'g', user: bob });
  tracker.onDiff({ type: 'presence_diff', guildId: 'g', count: 1, joined: [], left: ['u2'] });
  assert.deepEqual(events.map(([t]) => t), ['typing', 'presence', 'typing'], 'a leave stops their typing');
  tracker.onTyping({ type: 'typing', guildId: 'g', user: ann });
  events.length = 0;
  tracker.onMessage({ guildId: 'g', from: ann });
  tracker.onMessage({ guildId: 'g', from: ann });
  assert.deepEqual(events, [['typing', { guildId: 'g', users: [] }]], 'a message clears it once');

  assert.ok(tracker.typing('g'));
  assert.ok(!tracker.typing('g'));
  assert.deepEqual(written, [{ type: 'typing', guildId: 'g' }]);
});

test('a ChatClient exposes presence state and sends no typing while not connected', () => {
  const client = new ChatClient({ url: 'ws://127.0.0.1:1/ws' });
  const seen = [];
  client.on('presence', (p) => seen.push(p.count));
  client.onFrame({ ws: client.ws }, JSON.stringify({ type: 'presence', guildId: 'g', count: 1, online: [ann], available: true, truncated: false }));
  assert.deepEqual(seen, [1]);
  assert.deepEqual(client.presence('g').online, [ann]);
  assert.deepEqual(client.typingUsers('g'), []);
  assert.equal(client.typing('g'), false, 'nothing to send on');
  client.destroy();
});
