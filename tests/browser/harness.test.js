/**
 * The test harness itself (lib/gateway.js): a gateway is taken for started only on the word of
 * its own process. Another process answering /healthz on the gateway's port (a worker's or an
 * ops listener's: 404 for dev login) must not pass for it, at the first start or a restart; a
 * start that fails stops the workers it started.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { GatewayProcess, distributedEnv } from './lib/gateway.js';

const gateways = [];
after(async () => {
  for (const g of gateways) await g.stop();
});

/** A stranger on `port` that answers every request as an ops listener does: 200 on /healthz, 404 else. */
async function stranger(port) {
  const server = createServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 404).end());
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

test('start: the ports are the ones the gateway bound and said, and it answers there', async () => {
  const gateway = await new GatewayProcess().start();
  gateways.push(gateway);
  assert.ok(gateway.port > 0 && gateway.opsPort > 0 && gateway.port !== gateway.opsPort);
  await gateway.devLogin({ name: 'Ann', guilds: ['g'] });
  assert.equal((await fetch(`${gateway.opsUrl}/healthz`)).status, 200);
});

for (const [mode, distributed] of [['embedded', null], ['distributed', distributedEnv()]]) {
  const skip = mode === 'distributed' && !distributed && 'set NATS_URL and REDIS_URL';
  test(`${mode}: start on a port another process holds fails with the reason and leaves no worker running`, { skip }, async () => {
    const server = await stranger(0);
    try {
      const gateway = new GatewayProcess({ port: server.address().port, distributed });
      await assert.rejects(gateway.start(), /cannot listen on 127\.0\.0\.1:\d+/);
      assert.ok(gateway.workers.every((w) => !w.alive()), 'the workers were stopped');
    } finally {
      server.close();
    }
  });
}

test('restart: a port taken while the gateway was down fails the restart with its reason', async () => {
  const gateway = await new GatewayProcess().start();
  gateways.push(gateway);
  await gateway.crash();
  const server = await stranger(gateway.port);
  try {
    await assert.rejects(gateway.restart(), /cannot listen on 127\.0\.0\.1:\d+/);
  } finally {
    server.close();
  }
});
