// Holds N idle Engine.IO long-polling sessions against a Socket.IO server (ours or the Node
// reference) and reports the server's memory for them: each session signs in through the dev
// login, connects (POST `40`), then always keeps one GET poll pending, answering pings with a
// pong. Prints one JSON line: {sessions, failed, rssKibBefore, rssKibAfter, kibPerSession}.
// Usage: node idle-polling.js BASE_URL SERVER_PID [SESSIONS=1000] [HOLD_MS=10000]
import { readFileSync } from 'node:fs';
import { Agent, setGlobalDispatcher } from 'undici';

const [base, pid, n = '1000', hold = '10000'] = process.argv.slice(2);
const sessions = Number(n);
setGlobalDispatcher(new Agent({ connections: sessions * 2 + 16, pipelining: 0 }));

const rssKib = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
const url = (sid) => `${base}/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : ''}`;
let stopped = false;

async function open(i) {
  const login = await fetch(`${base}/api/dev/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: `poll${i}`, name: `poll${i}`, role: 'member', guilds: [`pg${i % 10}`] }),
  });
  const { token } = await login.json();
  const headers = { authorization: `Bearer ${token}`, cookie: `slimy_admin_token=${token}` };
  const openText = await (await fetch(url(), { headers })).text();
  const { sid } = JSON.parse(openText.slice(1));
  await fetch(url(sid), { method: 'POST', headers, body: '40' });
  const first = await (await fetch(url(sid), { headers })).text();
  if (!first.includes('40{')) throw new Error(`no CONNECT answer: ${first.slice(0, 60)}`);
  // Keep one poll pending; answer pings.
  (async () => {
    while (!stopped) {
      const res = await fetch(url(sid), { headers }).catch(() => null);
      if (!res || res.status !== 200) return;
      const body = await res.text();
      if (body.split('\x1e').includes('2')) await fetch(url(sid), { method: 'POST', headers, body: '3' });
    }
  })();
}

const before = rssKib();
let failed = 0;
for (let i = 0; i < sessions; i += 50) {
  const batch = Array.from({ length: Math.min(50, sessions - i) }, (_, k) => open(i + k).catch(() => { failed += 1; }));
  await Promise.all(batch);
}
await new Promise((r) => setTimeout(r, Number(hold)));
const after = rssKib();
stopped = true;
const held = sessions - failed;
console.log(JSON.stringify({ sessions: held, failed, rssKibBefore: before, rssKibAfter: after, kibPerSession: held ? (after - before) / held : null }));
process.exit(0);
