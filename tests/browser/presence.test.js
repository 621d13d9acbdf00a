/**
 * Presence and typing on the chat page, in two Chromium browsers against a real embedded gateway:
 * the online list of the open guild shows both users (a member of another guild sees neither),
 * closing one browser's page shows that user gone after the linger (not before), typing in one
 * page shows "Ann is typing…" in the other and nothing in its own, two typists read "… and … are
 * typing…", and a guild above PRESENCE_MAX_LISTED shows the exact count with "and N more".
 * With NATS_URL and REDIS_URL, the first story runs again over two distributed gateways (Ann's
 * page on one, Bob's on the other).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayProcess, distributedEnv, newSecret } from './lib/gateway.js';
import { byTestId, launchBrowser, screenshot, sendMessage, waitForMessage } from './lib/browser.js';
import { guildId, signedInPage, withGatewayOutput } from './lib/fixtures.js';

const LINGER_MS = 2000;
const MAX_LISTED = 2;

const PRESENCE_ENV = { PRESENCE_LINGER_MS: String(LINGER_MS), PRESENCE_MAX_LISTED: String(MAX_LISTED) };

let gateway;
let browsers = [];
const extraGateways = [];

before(async () => {
  gateway = await new GatewayProcess({ env: PRESENCE_ENV }).start();
  browsers = [await launchBrowser(), await launchBrowser()];
});

after(async () => {
  for (const b of browsers) await b?.close();
  await gateway?.stop();
  for (const g of extraGateways) await g.stop();
});

/** The names in the page's online list, in order. */
function onlineNames(page) {
  return byTestId(page, 'online-list').locator('[data-testid="online-name"]').allTextContents();
}

/** Waits until the online list shows exactly `names` (sorted) and the count says `count`. */
async function waitForOnline(page, names, count = names.length) {
  await page.waitForFunction(({ names: want, count: n }) => {
    const shown = [...document.querySelectorAll('[data-testid="online-list"] [data-testid="online-name"]')]
      .map((el) => el.textContent);
    const header = document.querySelector('[data-testid="online-count"]')?.textContent;
    return JSON.stringify(shown) === JSON.stringify(want) && header === `Online — ${n}`;
  }, { names, count });
}

async function typingLine(page) {
  return (await byTestId(page, 'typing-indicator').textContent()) ?? '';
}

test('two browsers in one guild: both listed, gone after the linger, typing shown to the other only', () => withGatewayOutput(gateway, () => twoBrowsers(gateway, gateway)));

test('distributed: Ann on one gateway, Bob and Eve on another, the same story', { skip: !distributedEnv() && 'set NATS_URL and REDIS_URL' }, async () => {
  const secret = newSecret();
  const gw1 = await new GatewayProcess({ secret, distributed: distributedEnv(), env: PRESENCE_ENV }).start();
  extraGateways.push(gw1);
  const gw2 = await new GatewayProcess({ secret, distributed: distributedEnv(), withWorkers: false, env: PRESENCE_ENV }).start();
  extraGateways.push(gw2);
  await withGatewayOutput(gw1, () => withGatewayOutput(gw2, () => twoBrowsers(gw1, gw2)));
});

/** Ann's page on `gwAnn`, Bob's and Eve's (another guild) on `gwBob`. */
async function twoBrowsers(gwAnn, gwBob) {
  const g = guildId('presence');
  const elsewhere = guildId('elsewhere');
  const ann = await signedInPage(browsers[0], gwAnn, { name: 'Ann', guilds: [g] });
  const bob = await signedInPage(browsers[1], gwBob, { name: 'Bob', guilds: [g] });
  const eve = await signedInPage(browsers[1], gwBob, { name: 'Eve', guilds: [elsewhere] });

  await waitForOnline(ann.page, ['Ann', 'Bob']);
  await waitForOnline(bob.page, ['Ann', 'Bob']);
  await waitForOnline(eve.page, ['Eve']);
  assert.match(await byTestId(ann.page, 'online-list').textContent(), /\(you\)/);
  await screenshot(ann.page, 'presence-both-online');

  // Typing in Ann's page: Bob sees it, Ann does not, Eve (another guild) does not.
  await byTestId(ann.page, 'composer-input').pressSequentially('hello the', { delay: 30 });
  await byTestId(bob.page, 'typing-indicator').filter({ hasText: 'Ann is typing…' }).waitFor();
  assert.equal(await typingLine(ann.page), '', 'no typing line for oneself');
  assert.equal(await typingLine(eve.page), '');
  const annTypingFrames = ann.sentFrames.filter((r) => r.frame?.type === 'typing');
  assert.ok(annTypingFrames.length >= 1 && annTypingFrames.length <= 2, `throttled: ${annTypingFrames.length} typing frames for 9 keystrokes`);
  assert.ok(annTypingFrames.every((r) => r.frame.guildId === g));
  await screenshot(bob.page, 'presence-typing');

  // Sending the message clears Ann's typing line at Bob's.
  await byTestId(ann.page, 'composer-input').press('Enter');
  await waitForMessage(bob.page, 'hello the');
  await bob.page.waitForFunction(() => document.querySelector('[data-testid="typing-indicator"]').textContent === '');

  // Closing Ann's page: still listed within the linger, gone after it.
  const closedAt = Date.now();
  await ann.context.close();
  await bob.page.waitForTimeout(Math.min(500, LINGER_MS / 4));
  assert.deepEqual(await onlineNames(bob.page), ['Ann', 'Bob'], 'Ann lingers after her page closed');
  await waitForOnline(bob.page, ['Bob']);
  const goneAfter = Date.now() - closedAt;
  assert.ok(goneAfter >= LINGER_MS - 250, `gone after the linger (${goneAfter} ms, linger ${LINGER_MS} ms)`);
  await screenshot(bob.page, 'presence-after-leave');
  await waitForOnline(eve.page, ['Eve']);
  await bob.context.close();
  await eve.context.close();
}

test('two typists read "Ann and Cid are typing…"; a large guild shows its count and "and N more"', () => withGatewayOutput(gateway, async () => {
  const g = guildId('crowd');
  const ann = await signedInPage(browsers[0], gateway, { name: 'Ann', guilds: [g] });
  const bob = await signedInPage(browsers[1], gateway, { name: 'Bob', guilds: [g] });
  // Both joined before Cid connects, so Cid's snapshot is the full (truncated) list, not a
  // partial one that a diff then completes.
  await waitForOnline(ann.page, ['Ann', 'Bob']);
  await waitForOnline(bob.page, ['Ann', 'Bob']);
  const cid = await signedInPage(browsers[0], gateway, { name: 'Cid', guilds: [g] });

  // Three online, above MAX_LISTED=2: the guild lists a sample (the first MAX_LISTED - 1 by
  // name: Ann) and each page its own user beside it, with the exact count and "and N more".
  for (const [p, listed] of [[cid, ['Ann', 'Cid']], [bob, ['Ann', 'Bob']], [ann, ['Ann']]]) {
    await waitForOnline(p.page, listed, 3);
    await byTestId(p.page, 'online-more').filter({ hasText: `and ${3 - listed.length} more` }).waitFor();
  }
  await screenshot(cid.page, 'presence-large-guild');

  await byTestId(ann.page, 'composer-input').pressSequentially('hi', { delay: 30 });
  await byTestId(cid.page, 'composer-input').pressSequentially('yo', { delay: 30 });
  await byTestId(bob.page, 'typing-indicator').filter({ hasText: /^(Ann and Cid|Cid and Ann) are typing…$/ }).waitFor();
  await byTestId(cid.page, 'typing-indicator').filter({ hasText: 'Ann is typing…' }).waitFor();
  await byTestId(ann.page, 'typing-indicator').filter({ hasText: 'Cid is typing…' }).waitFor();
  await screenshot(bob.page, 'presence-two-typists');
  await sendMessage(bob.page, 'done');
  for (const p of [ann, bob, cid]) await p.context.close();
}));
