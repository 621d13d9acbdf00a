// Bad input at the Engine.IO / Socket.IO level, sent raw over HTTP long-polling and WebSocket:
// each gets the protocol's error answer or is ignored, and the session keeps working; no other
// session's packets leak.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startGateway, guildId, COOKIE_NAME, withOutput } from './lib/harness.js';

const RS = '\x1e';
let gw;
let token;
let g;
before(async () => {
  gw = await startGateway();
  g = guildId('bad');
  ({ token } = await gw.devLogin({ name: 'Ann', guilds: [g] }));
});
after(async () => { await gw?.stop(); });

const url = (query) => `${gw.baseUrl}/socket.io/?EIO=4&${query}`;
const cookie = () => ({ cookie: `${COOKIE_NAME}=${token}` });

async function handshake() {
  const res = await fetch(url('transport=polling'), { headers: cookie() });
  assert.equal(res.status, 200);
  const body = await res.text();
  assert.equal(body[0], '0');
  return JSON.parse(body.slice(1)).sid;
}
const postPackets = (sid, body) => fetch(url(`transport=polling&sid=${sid}`), { method: 'POST', headers: cookie(), body });
const poll = async (sid) => (await fetch(url(`transport=polling&sid=${sid}`), { headers: cookie() })).text();

/** A polling session whose socket is connected (CONNECT answered). */
async function connectedSession() {
  const sid = await handshake();
  assert.equal(await (await postPackets(sid, '40')).text(), 'ok');
  let answer = await poll(sid);
  assert.match(answer, /^40\{"pid":"[^"]+","sid":"[^"]+"\}/);
  // The presence snapshot of its guild follows the CONNECT answer: take it too, so that the
  // session's queue is empty again.
  while (!answer.includes('42["presence"')) answer += await poll(sid);
  return sid;
}

test('protocol errors answer 400 with the Engine.IO code', () => withOutput(gw, async () => {
  const table = [
    ['transport=polling&EIO=3', 5],
    ['transport=carrier-pigeon', 0],
    ['transport=polling&sid=nope', 1],
  ];
  for (const [query, code] of table) {
    const res = await fetch(`${gw.baseUrl}/socket.io/?${query.includes('EIO=3') ? query : `EIO=4&${query}`}`);
    assert.equal(res.status, 400, query);
    assert.equal((await res.json()).code, code, query);
  }
  const post = await fetch(url('transport=polling'), { method: 'POST', body: '40' });
  assert.equal(post.status, 400);
  assert.equal((await post.json()).code, 2);
}));

test('malformed packets, unknown events, non-object payloads and stray acks are ignored; the session still works', () => withOutput(gw, async () => {
  const sid = await connectedSession();
  const junk = ['', 'x', '9', '4', '4x', '42', '42[', '42{}', '42[1]', '42"s"', '43', '437[1]', '451-["a",{"_placeholder":true,"num":0}]', 'bAQID', '2probe', '5', '40', '42["chat:nope",{}]', '4299999999999999999999["chat:message",{}]'];
  assert.equal(await (await postPackets(sid, junk.join(RS))).text(), 'ok');
  assert.equal(await (await postPackets(sid, `421["chat:message",{"guildId":"${g}","text":"still fine"}]`)).text(), 'ok');
  let answer = '';
  for (let i = 0; i < 5 && !answer.includes('431['); i++) answer += await poll(sid);
  assert.match(answer, /431\[\{"messageId":"[^"]+","ok":true,"seq":\d+\}\]/);
}));

test('a second poll at once ends the session; an unknown or closed sid is refused', () => withOutput(gw, async () => {
  const sid = await connectedSession();
  const first = fetch(url(`transport=polling&sid=${sid}`), { headers: cookie() });
  await new Promise((r) => setTimeout(r, 200));
  const second = await fetch(url(`transport=polling&sid=${sid}`), { headers: cookie() });
  assert.equal(second.status, 400);
  assert.equal((await first).status, 200);
  await new Promise((r) => setTimeout(r, 200));
  const after = await fetch(url(`transport=polling&sid=${sid}`), { headers: cookie() });
  assert.equal(after.status, 400);
  assert.equal((await after.json()).code, 1);
}));

test('an oversized polling body is refused with 413 and ends that session only', () => withOutput(gw, async () => {
  const other = await connectedSession();
  const sid = await connectedSession();
  const res = await postPackets(sid, `42["chat:message",{"text":"${'x'.repeat(70000)}"}]`);
  assert.equal(res.status, 413);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await fetch(url(`transport=polling&sid=${sid}`), { headers: cookie() })).status, 400);
  assert.equal(await (await postPackets(other, `421["chat:message",{"guildId":"${g}","text":"other ok"}]`)).text(), 'ok');
  let answer = '';
  for (let i = 0; i < 5 && !answer.includes('431['); i++) answer += await poll(other);
  assert.match(answer, /431\[\{"messageId"/);
}));

test('an upgraded sid no longer takes polling requests; a second upgrade is refused', () => withOutput(gw, async () => {
  const sid = await connectedSession();
  const ws = new WebSocket(`${gw.baseUrl.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&sid=${sid}`, { headers: cookie() });
  const frames = [];
  ws.on('message', (d) => frames.push(String(d)));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const pending = poll(sid);
  ws.send('2probe');
  while (!frames.includes('3probe')) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await pending, '6');
  ws.send('5');
  await new Promise((r) => setTimeout(r, 200));
  const polled = await fetch(url(`transport=polling&sid=${sid}`), { headers: cookie() });
  assert.equal(polled.status, 400);
  assert.equal((await polled.json()).code, 3);
  const again = await fetch(url(`transport=websocket&sid=${sid}`), {
    headers: { ...cookie(), connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
  }).catch(() => null);
  assert.ok(again === null || again.status === 400);
  ws.send('4garbage');
  ws.send(Buffer.from([1, 2, 3]));
  ws.send(`421["chat:message",{"guildId":"${g}","text":"over ws"}]`);
  while (!frames.some((f) => f.startsWith('431['))) await new Promise((r) => setTimeout(r, 20));
  ws.close();
}));
