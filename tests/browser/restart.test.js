/**
 * A gateway crash mid-conversation, seen from the browser. The gateway is frozen (SIGSTOP) right
 * after the page sent a message, so that send is never acknowledged, then killed (SIGKILL) and
 * started again on the same port with the same JWT_SECRET. The page must show "reconnecting",
 * come back, re-send the unacknowledged message with the SAME messageId, and show nothing twice.
 *
 * Embedded mode keeps log and sessions in memory, so the restarted gateway has lost both: the
 * test signs the users in again over HTTP (same ids) and checks recovery of the pending send.
 * With NATS_URL and REDIS_URL set, the same story also runs distributed, with a second gateway
 * where the other user keeps talking meanwhile; those messages must come back through resume.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { GatewayProcess, distributedEnv, newSecret } from './lib/gateway.js';
import {
  handshakePositions, launchBrowser, messageRow, messageTexts, recordStates, screenshot, sendMessage, waitForMessage,
  waitForState, waitForStateSeen,
} from './lib/browser.js';
import { guildId, signedInPage, withGatewayOutput } from './lib/fixtures.js';

let browser;
const gateways = [];

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const gw of gateways.reverse()) await gw.stop();
});

const userId = (label) => `${label}-${randomBytes(3).toString('hex')}`;

function assertNoDuplicates(texts, who) {
  assert.equal(new Set(texts).size, texts.length, `${who} shows a message twice: ${JSON.stringify(texts)}`);
}

/**
 * The common story. `reseed`: sign the users in again after the restart (embedded sessions are
 * in memory). `continuous`: the log survived, so live delivery carries on across the restart.
 * `meanwhile` runs while Ann's gateway is down and returns texts Ann must get through resume.
 */
async function crashStory({ annGateway, bobGateway, reseed, continuous, meanwhile }) {
  const g = guildId('crash');
  const annId = userId('ann');
  const bobId = userId('bob');
  const ann = await signedInPage(browser, annGateway, { id: annId, name: 'Ann', guilds: [g] });
  const bob = await signedInPage(browser, bobGateway, { id: bobId, name: 'Bob', guilds: [g] });

  await sendMessage(ann.page, 'before the crash (Ann)');
  await waitForMessage(bob.page, 'before the crash (Ann)');
  await sendMessage(bob.page, 'before the crash (Bob)');
  await waitForMessage(ann.page, 'before the crash (Bob)');

  annGateway.pause();
  const pendingText = 'sent just before the crash';
  await sendMessage(ann.page, pendingText);
  const { frame: sent } = await ann.waitForSent((f) => f?.type === 'send' && f.text === pendingText);
  const { messageId } = sent;
  await messageRow(ann.page, pendingText).and(ann.page.locator('[data-status="pending"]')).waitFor();
  await annGateway.crash();

  await ann.page.locator('[data-testid="conn-text"]', { hasText: /^Reconnecting in \d+ s$/ }).waitFor();
  await screenshot(ann.page, 'crash-reconnecting');
  const meanwhileTexts = (await meanwhile?.({ ann, bob, g })) ?? [];

  await annGateway.restart();
  if (reseed) {
    await annGateway.devLogin({ id: annId, name: 'Ann', guilds: [g] });
    await annGateway.devLogin({ id: bobId, name: 'Bob', guilds: [g] });
  }
  await waitForState(ann.page, 'connected');
  await waitForMessage(ann.page, pendingText);
  for (const text of meanwhileTexts) await waitForMessage(ann.page, text);

  const sends = ann.sentFrames.filter((f) => f.frame?.type === 'send' && f.frame.text === pendingText);
  assert.ok(sends.length >= 2, `the unacked send was re-sent (${sends.length} send frames)`);
  assert.ok(sends.every((f) => f.frame.messageId === messageId), 'every re-send keeps the messageId');
  assert.ok(new Set(sends.map((f) => f.socket)).size >= 2, 'the re-send went over a new connection');
  const named = ann.sockets.slice(1).map((ws) => handshakePositions(ws.url()));
  assert.ok(named.some((positions) => positions[g] >= 2), `resumed ${g} from its last seq in the handshake`);

  await waitForState(bob.page, 'connected');
  if (continuous) {
    await waitForMessage(bob.page, pendingText);
    await sendMessage(bob.page, 'after the restart (Bob)');
    await waitForMessage(ann.page, 'after the restart (Bob)');
  } else {
    // A restarted embedded gateway starts its log again at seq 1, below the positions the
    // pages resume from, so live delivery of the new log resumes only past them: check what a
    // fresh page load shows instead.
    await bob.page.reload();
    await waitForState(bob.page, 'connected');
    await waitForMessage(bob.page, pendingText);
  }
  const annTexts = await messageTexts(ann.page);
  assertNoDuplicates(annTexts, 'Ann');
  assert.equal(annTexts.filter((t) => t === pendingText).length, 1);
  const bobTexts = await messageTexts(bob.page);
  assertNoDuplicates(bobTexts, 'Bob');
  assert.equal(bobTexts.filter((t) => t === pendingText).length, 1);

  const log = await annGateway.history(ann.token, g);
  assert.equal(log.messages.filter((m) => m.message.messageId === messageId).length, 1, 'the log holds it once');
  await screenshot(ann.page, 'crash-recovered');
  await ann.context.close();
  await bob.context.close();
}

test('embedded: a crashed and restarted gateway; the page recovers its unacked send once', async () => {
  const gateway = await new GatewayProcess({ secret: newSecret() }).start();
  gateways.push(gateway);
  await withGatewayOutput(gateway, () => crashStory({ annGateway: gateway, bobGateway: gateway, reseed: true, continuous: false }));
});

test('distributed: messages sent while the gateway was down come back through resume', { skip: !distributedEnv() && 'set NATS_URL and REDIS_URL' }, async () => {
  const secret = newSecret();
  const gw1 = await new GatewayProcess({ secret, distributed: distributedEnv() }).start();
  gateways.push(gw1);
  const gw2 = await new GatewayProcess({ secret, distributed: distributedEnv(), withWorkers: false }).start();
  gateways.push(gw2);
  await withGatewayOutput(gw1, () => crashStory({
    annGateway: gw1,
    bobGateway: gw2,
    reseed: false,
    continuous: true,
    meanwhile: async ({ bob }) => {
      const texts = ['while Ann was away 1', 'while Ann was away 2'];
      for (const text of texts) {
        await sendMessage(bob.page, text);
        await waitForMessage(bob.page, text);
      }
      return texts;
    },
  }));
});

test('a graceful restart (close code 1012) reconnects promptly, without backoff', async () => {
  const gateway = await new GatewayProcess({
    env: { SHUTDOWN_READINESS_DELAY_MS: '0', SHUTDOWN_CLOSE_WINDOW_MS: '0' },
  }).start();
  gateways.push(gateway);
  await withGatewayOutput(gateway, async () => {
    const g = guildId('drain');
    const id = userId('dan');
    const dan = await signedInPage(browser, gateway, { id, name: 'Dan', guilds: [g] });
    await recordStates(dan.page);
    await gateway.terminate();
    const info = await waitForStateSeen(dan.page, 'reconnecting');
    assert.equal(info.reason, 'server restarting');
    assert.ok(info.nextAttemptAt - info.at <= 500, 'the first attempt comes within the small jitter');
    await gateway.restart();
    await gateway.devLogin({ id, name: 'Dan', guilds: [g] });
    await waitForState(dan.page, 'connected');
    await sendMessage(dan.page, 'back after the drain');
    await waitForMessage(dan.page, 'back after the drain');
    await dan.context.close();
  });
});
