/**
 * The chat page in headless Chromium against a real embedded gateway: dev sign-in by keyboard,
 * delivery only within a guild, admin-only messages, text never parsed as HTML, bot replies,
 * history paging, phone width. Screenshots go to tests/browser/artifacts/ (and to
 * docs/chat-page.png when UPDATE_DOCS_SCREENSHOT is set).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { GatewayProcess, REPO_ROOT } from './lib/gateway.js';
import {
  byTestId, launchBrowser, messageRow, messageTexts, newContext, openChat, screenshot,
  sendMessage, waitForMessage, waitForState,
} from './lib/browser.js';
import { guildId, signedInPage, withGatewayOutput } from './lib/fixtures.js';

let gateway;
let browser;

before(async () => {
  gateway = await new GatewayProcess().start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

test('dev login form works by keyboard and opens the chat', () => withGatewayOutput(gateway, async () => {
  const guild = guildId('kbd');
  const context = await newContext(browser, gateway.baseUrl);
  const { page } = await openChat(context);
  await waitForState(page, 'signed_out');
  await byTestId(page, 'login-form').waitFor();
  await screenshot(page, 'signin');

  const name = byTestId(page, 'login-name');
  await name.focus();
  await page.keyboard.type('Keyboard Kim');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'login-role');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'login-guilds');
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.type(guild);
  await page.keyboard.press('Enter');

  await waitForState(page, 'connected');
  assert.equal(await byTestId(page, 'me-name').textContent(), 'Keyboard Kim');
  await page.locator(`[data-testid="guild-${guild}"][aria-current="true"]`).waitFor();

  await byTestId(page, 'composer-input').focus();
  await page.keyboard.type('typed and sent with Enter');
  await page.keyboard.press('Enter');
  await waitForMessage(page, 'typed and sent with Enter');
  assert.equal(await byTestId(page, 'composer-input').inputValue(), '');
  await context.close();
}));

test('members of a guild see each other; a member of another guild sees neither', () => withGatewayOutput(gateway, async () => {
  const g1 = guildId('g1');
  const g2 = guildId('g2');
  const ann = await signedInPage(browser, gateway, { name: 'Ann', guilds: [g1] });
  const bob = await signedInPage(browser, gateway, { name: 'Bob', role: 'club', guilds: [g1] });
  const cy = await signedInPage(browser, gateway, { name: 'Cy', guilds: [g2] });

  await sendMessage(ann.page, 'hello from Ann');
  await waitForMessage(bob.page, 'hello from Ann');
  await sendMessage(bob.page, 'hi Ann, Bob here');
  await waitForMessage(ann.page, 'hi Ann, Bob here');
  await sendMessage(cy.page, 'Cy alone in g2');
  await waitForMessage(cy.page, 'Cy alone in g2');

  assert.deepEqual(await messageTexts(ann.page), ['hello from Ann', 'hi Ann, Bob here']);
  assert.deepEqual(await messageTexts(bob.page), ['hello from Ann', 'hi Ann, Bob here']);
  assert.deepEqual(await messageTexts(cy.page), ['Cy alone in g2']);

  const bobOnAnnsPage = messageRow(ann.page, 'hi Ann, Bob here').locator('[data-testid="message-sender"]');
  assert.equal(await bobOnAnnsPage.textContent(), 'Bob');
  assert.equal(await bobOnAnnsPage.evaluate((el) => getComputedStyle(el).color), 'rgb(245, 158, 11)');
  assert.equal(await byTestId(ann.page, 'admin-only-label').isVisible(), false);
  await screenshot(bob.page, 'two-members');
  for (const p of [ann, bob, cy]) await p.context.close();
}));

test('an admin-only message reaches the admin only, with an ADMIN badge', () => withGatewayOutput(gateway, async () => {
  const g = guildId('adm');
  const admin = await signedInPage(browser, gateway, { name: 'Root', role: 'admin', guilds: [g] });
  const member = await signedInPage(browser, gateway, { name: 'Mia', guilds: [g] });

  assert.equal(await byTestId(admin.page, 'admin-only-label').isVisible(), true);
  await sendMessage(admin.page, 'secret admin note', { adminOnly: true });
  await waitForMessage(admin.page, 'secret admin note');
  assert.equal(await messageRow(admin.page, 'secret admin note').locator('[data-testid="admin-badge"]').isVisible(), true);

  await sendMessage(admin.page, 'public announcement', { adminOnly: false });
  await waitForMessage(member.page, 'public announcement');
  assert.deepEqual(await messageTexts(member.page), ['public announcement']);
  assert.deepEqual(await messageTexts(admin.page), ['secret admin note', 'public announcement']);

  await member.page.reload();
  await waitForState(member.page, 'connected');
  await waitForMessage(member.page, 'public announcement');
  assert.deepEqual(await messageTexts(member.page), ['public announcement'], 'history hides admin-only too');
  await screenshot(admin.page, 'admin-only');
  await admin.context.close();
  await member.context.close();
}));

test('message text and names are shown as text, never as HTML', () => withGatewayOutput(gateway, async () => {
  const g = guildId('xss');
  const payload = '<img src=x onerror=window.__xss=1>';
  const mallory = await signedInPage(browser, gateway, { name: '<b onmouseover=window.__xss=2>Mallory</b>', guilds: [g] });
  const victim = await signedInPage(browser, gateway, { name: 'Vic', guilds: [g] });

  await sendMessage(mallory.page, payload);
  await waitForMessage(victim.page, payload);
  await waitForMessage(mallory.page, payload);
  for (const { page } of [mallory, victim]) {
    assert.equal(await page.locator('[data-testid="message-list"] img, [data-testid="message-list"] b').count(), 0);
    assert.equal(await messageRow(page, payload).locator('[data-testid="message-sender"]').textContent(),
      '<b onmouseover=window.__xss=2>Mallory</b>');
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined');
  }
  await victim.page.reload();
  await waitForMessage(victim.page, payload);
  assert.equal(await victim.page.evaluate(() => typeof window.__xss), 'undefined');
  await screenshot(victim.page, 'xss-as-text');
  await mallory.context.close();
  await victim.context.close();
}));

test('history pages back with "load older" in seq order', () => withGatewayOutput(gateway, async () => {
  const g = guildId('hist');
  const { token } = await gateway.devLogin({ name: 'Writer', guilds: [g] });
  for (let i = 1; i <= 60; i += 1) {
    // 60 posts exceed one user's send budget (burst 40): wait out each 429's Retry-After, as
    // a client should; the same messageId makes the retry safe.
    for (;;) {
      const res = await fetch(`${gateway.baseUrl}/api/guilds/${g}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ guildId: g, text: `history ${i}`, messageId: `hist_${g}_${i}` }),
      });
      if (res.status === 429) {
        const wait = Number(res.headers.get('retry-after') || '1');
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        continue;
      }
      assert.equal(res.status, 201, await res.text());
      break;
    }
  }
  const reader = await signedInPage(browser, gateway, { name: 'Reader', guilds: [g] });
  await waitForMessage(reader.page, 'history 60');
  const firstPage = await messageTexts(reader.page);
  assert.equal(firstPage.length, 50);
  assert.equal(firstPage[0], 'history 11');
  await byTestId(reader.page, 'load-older').click();
  await waitForMessage(reader.page, 'history 1');
  const all = await messageTexts(reader.page);
  assert.deepEqual(all, Array.from({ length: 60 }, (_, i) => `history ${i + 1}`));
  assert.equal(await byTestId(reader.page, 'load-older').isVisible(), false);
  await reader.context.close();
}));

test('bot replies are marked, and the page fits a phone', () => withGatewayOutput(gateway, async () => {
  // Readable guild names for the screenshots; no other test of this file uses them.
  const g = 'general';
  const ann = await signedInPage(browser, gateway, { name: 'Ann', role: 'admin', guilds: [g, 'random', 'announcements'] });
  const bob = await signedInPage(browser, gateway, {
    name: 'Bob', role: 'club', guilds: [g, 'random'], viewport: { width: 390, height: 760 },
  });
  await sendMessage(bob.page, 'Morning all! Standup in 5.');
  await waitForMessage(ann.page, 'Morning all! Standup in 5.');
  await sendMessage(ann.page, 'Only admins see this: rotate the keys today.', { adminOnly: true });
  await waitForMessage(ann.page, 'Only admins see this: rotate the keys today.');
  await sendMessage(ann.page, '@slimy what is on the agenda?');
  const botRow = ann.page.locator('[data-testid="message"][data-role="bot"]');
  await botRow.first().waitFor();
  assert.equal(await botRow.first().locator('[data-testid="bot-badge"]').isVisible(), true);
  assert.equal(await botRow.first().locator('[data-testid="message-sender"]').textContent(), 'slimy.ai');
  await bob.page.locator('[data-testid="message"][data-role="bot"]').first().waitFor();

  const overflow = await bob.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `horizontal overflow of ${overflow}px at phone width`);
  for (const id of ['composer-input', 'send-button', 'conn-state']) {
    const box = await byTestId(bob.page, id).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${id} within the phone viewport`);
  }
  await screenshot(bob.page, 'phone');
  await screenshot(ann.page, 'chat-page');
  if (process.env.UPDATE_DOCS_SCREENSHOT) await ann.page.screenshot({ path: path.join(REPO_ROOT, 'docs/chat-page.png') });
  await ann.context.close();
  await bob.context.close();
}));

test('a refused send shows its error next to the message', () => withGatewayOutput(gateway, async () => {
  const g = guildId('err');
  const mia = await signedInPage(browser, gateway, { name: 'Mia', guilds: [g] });
  // The page offers admin-only to admins only; the library lets a member try, and the server refuses.
  await mia.page.evaluate((guild) => window.chatClient.send({ guildId: guild, text: 'members cannot do this', adminOnly: true }), g);
  const row = messageRow(mia.page, 'members cannot do this');
  await row.and(mia.page.locator('[data-status="failed"]')).waitFor();
  assert.match(await row.locator('[data-testid="message-error-text"]').textContent(), /admin_only_forbidden/);
  assert.equal(await row.locator('[data-testid="message-retry"]').isVisible(), false, 'no Retry for a permanent refusal');
  await screenshot(mia.page, 'send-error');
  await mia.context.close();
}));
