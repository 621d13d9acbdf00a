// Behind real HAProxy (deploy/haproxy-local.cfg.tmpl) in front of two gateways: polling-only and
// polling-then-upgrade clients stay on the gateway of their session (sticky by sid), and a drain
// of that gateway moves them to the other one, recovering what they missed. Distributed only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startPair, distributedEnv, connect, connected, send, collect, guildId, post, once, sleep, withOutput } from './lib/harness.js';
import { freePort, REPO_ROOT } from '../browser/lib/gateway.js';

const skip = !distributedEnv() && 'needs NATS_URL and REDIS_URL';
let gwA;
let gwB;
let lb;
let lbUrl;
let lbOutput = '';

before(async () => {
  if (skip) return;
  // A quick drain: readiness fails, HAProxy notices within 500 ms, then sessions are closed.
  [gwA, gwB] = await startPair({ SHUTDOWN_READINESS_DELAY_MS: '1500', SHUTDOWN_CLOSE_WINDOW_MS: '500' });
  const port = await freePort();
  lb = spawn('haproxy', ['-db', '-f', path.join(REPO_ROOT, 'deploy/haproxy-local.cfg.tmpl')], {
    env: { ...process.env, LB_PORT: String(port), GATEWAY_1_PORT: String(gwA.port), GATEWAY_2_PORT: String(gwB.port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  lb.stdout.on('data', (d) => { lbOutput += d; });
  lb.stderr.on('data', (d) => { lbOutput += d; });
  lbUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${lbUrl}/readyz`).catch(() => null);
    if (res?.status === 200) break;
    await sleep(100);
  }
  await sleep(1200); // both servers seen healthy
});
after(async () => {
  lb?.kill('SIGKILL');
  await gwA?.stop();
  await gwB?.stop();
});

for (const transports of [['polling'], ['polling', 'websocket']]) {
  test(`${transports.join(' then ')}: sticky through HAProxy, moved by a drain`, { skip }, () => withOutput([gwA, gwB, { output: () => lbOutput }], async () => {
    const g = guildId('lb');
    const { token } = await gwA.devLogin({ name: 'Ann', guilds: [g] });
    const socket = await connected(connect(lbUrl, { token, transports }));
    try {
      const inbox = collect(socket);
      let errors = 0;
      socket.io.on('error', () => { errors += 1; });
      for (let i = 0; i < 8; i++) {
        assert.equal((await send(socket, { guildId: g, text: `via lb ${i}` })).ok, true);
        await inbox.waitFor((m) => m.text === `via lb ${i}`);
      }
      assert.equal(errors, 0, 'no "Session ID unknown": every request reached the session');
      // Which gateway holds it: drain that one.
      const holders = await Promise.all([gwA, gwB].map(async (gw) => {
        const text = await (await fetch(`${gw.opsUrl}/metrics`)).text();
        return Number(/chat_gateway_connections (\d+)/.exec(text)?.[1] ?? 0);
      }));
      const [holder, other] = holders[0] > 0 ? [gwA, gwB] : [gwB, gwA];
      const reconnected = once(socket, 'connect', 30000);
      const draining = holder.terminate();
      await once(socket, 'disconnect', 30000);
      await post(other, token, g, { text: 'during the move' });
      await reconnected;
      assert.equal(socket.recovered, true);
      await inbox.waitFor((m) => m.text === 'during the move');
      assert.equal((await send(socket, { guildId: g, text: 'after the move' })).ok, true);
      await draining;
      await holder.restart();
      await sleep(1200);
    } finally {
      socket.close();
    }
  }));
}
