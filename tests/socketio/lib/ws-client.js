/**
 * A `/ws` client for the cross-transport tests (the npm `ws` package, so it can send the cookie),
 * with `send` that resolves with the frame answering its `ref`, and a record of `message` frames.
 */
import WebSocket from 'ws';
import { COOKIE_NAME, WAIT_MS } from './harness.js';

export async function wsClient(baseUrl, token) {
  const socket = new WebSocket(`${baseUrl.replace('http', 'ws')}/ws`, { headers: { cookie: `${COOKIE_NAME}=${token}` } });
  const frames = [];
  const waiters = new Set();
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data));
    frames.push(frame);
    for (const w of waiters) w.check();
  });
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject); });
  const waitFor = (predicate, ms = WAIT_MS) => new Promise((resolve, reject) => {
    const w = { check: () => { const hit = frames.find(predicate); if (hit) { waiters.delete(w); clearTimeout(t); resolve(hit); } } };
    const t = setTimeout(() => { waiters.delete(w); reject(new Error(`no matching /ws frame; saw ${JSON.stringify(frames.map((f) => f.type))}`)); }, ms);
    waiters.add(w);
    w.check();
  });
  await waitFor((f) => f.type === 'hello');
  let n = 0;
  const send = (fields) => {
    const ref = `r${++n}`;
    socket.send(JSON.stringify({ type: 'send', ref, ...fields }));
    return waitFor((f) => f.ref === ref);
  };
  const messages = () => frames.filter((f) => f.type === 'message').map((f) => f.message);
  return { socket, frames, waitFor, send, messages, close: () => socket.close() };
}
