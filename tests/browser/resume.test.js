/**
 * Resume in the handshake, in the browser against a real embedded gateway: a page that missed
 * messages while offline reconnects with its positions in `/ws?resume=…` (and sends no `resume`
 * frame), and gets the missed messages once each, in seq order, before the live ones that another
 * user keeps sending while it reconnects. With NATS_URL and REDIS_URL, again with the two users
 * on two distributed gateways.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayProcess, distributedEnv, newSecret } from './lib/gateway.js';
import { launchBrowser, screenshot, sendMessage, waitForMessage, waitForState } from './lib/browser.js';
import { guildId, signedInPage, withGatewayOutput } from './lib/fixtures.js';

const MISSED = 5;
const LIVE = 10;

let gateway;
let browser;
const extraGateways = [];

before(async () => {
  gateway = await new GatewayProcess().start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
  for (const g of extraGateways) await g.stop();
});

/** Records every `message` event of the page's client: `{seq, text, guildId}` in arrival order. */
async function recordMessages(page) {
  await page.evaluate(() => {
    window.messageLog = [];
    window.chatClient.on('message', ({ seq, message }) => {
      window.messageLog.push({ seq, text: message.text, guildId: message.guildId });
    });
  });
}

test('a reconnect names its positions in the handshake: missed messages once, in order, before live', () => withGatewayOutput(gateway, () => resumeStory(gateway, gateway)));

test('distributed: the same with Ann and Bob on different gateways', { skip: !distributedEnv() && 'set NATS_URL and REDIS_URL' }, async () => {
  const secret = newSecret();
  const gw1 = await new GatewayProcess({ secret, distributed: distributedEnv() }).start();
  extraGateways.push(gw1);
  const gw2 = await new GatewayProcess({ secret, distributed: distributedEnv(), withWorkers: false }).start();
  extraGateways.push(gw2);
  await withGatewayOutput(gw1, () => withGatewayOutput(gw2, () => resumeStory(gw1, gw2)));
});

async function resumeStory(gwAnn, gwBob) {
  const g = guildId('resume');
  const ann = await signedInPage(browser, gwAnn, { name: 'Ann', guilds: [g] });
  const bob = await signedInPage(browser, gwBob, { name: 'Bob', guilds: [g] });
  await recordMessages(ann.page);

  await sendMessage(bob.page, 'before offline');
  await waitForMessage(ann.page, 'before offline');

  await ann.context.setOffline(true);
  await waitForState(ann.page, 'offline');
  for (let i = 1; i <= MISSED; i += 1) {
    await sendMessage(bob.page, `missed ${i}`);
    await waitForMessage(bob.page, `missed ${i}`);
  }
  const socketsBefore = ann.sockets.length;

  // Bob keeps talking while Ann reconnects: live messages race the replay.
  await bob.page.evaluate(({ guild, count }) => {
    let i = 0;
    const timer = setInterval(() => {
      i += 1;
      window.chatClient.send({ guildId: guild, text: `live ${i}` });
      if (i === count) clearInterval(timer);
    }, 40);
  }, { guild: g, count: LIVE });
  await ann.context.setOffline(false);
  await waitForState(ann.page, 'connected');
  await waitForMessage(ann.page, `live ${LIVE}`);
  await screenshot(ann.page, 'resume-handshake');

  const socket = ann.sockets[socketsBefore];
  assert.ok(socket, 'the page opened a new socket');
  const named = new URL(socket.url()).searchParams.get('resume');
  assert.match(named ?? '', new RegExp(`^${g}:\\d+$`), `handshake names the guild's position: ${socket.url()}`);
  const firstSeen = Number(named.split(':')[1]);
  assert.ok(firstSeen >= 1, 'the position is the last seq seen before going offline');
  const resumeFrames = ann.sentFrames.filter((r) => r.socket === socketsBefore && r.frame?.type === 'resume');
  assert.deepEqual(resumeFrames, [], 'no first-frame resume after a handshake resume');

  const log = await ann.page.evaluate(() => window.messageLog);
  const texts = log.map((m) => m.text);
  const expected = ['before offline', ...Array.from({ length: MISSED }, (_, i) => `missed ${i + 1}`),
    ...Array.from({ length: LIVE }, (_, i) => `live ${i + 1}`)];
  assert.deepEqual(texts, expected, 'each message once, missed ones before live, in send order');
  for (let i = 1; i < log.length; i += 1) {
    assert.ok(log[i].seq > log[i - 1].seq, `seq order: ${JSON.stringify(log)}`);
  }
  assert.ok(log.every((m) => m.guildId === g));
  await ann.context.close();
  await bob.context.close();
}
