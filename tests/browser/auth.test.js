/**
 * Auth refusals in the browser against a real embedded gateway: an expired cookie (an HS256 token
 * minted here with the gateway's secret and `exp` in the past) and no cookie at all both end in
 * "signed out" after exactly one connection attempt — no reconnect loop.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayProcess } from './lib/gateway.js';
import { byTestId, launchBrowser, newContext, openChat, screenshot, waitForState } from './lib/browser.js';
import { withGatewayOutput } from './lib/fixtures.js';

/**
 * How long to watch for a reconnect loop after "signed out". A loop with the page's backoff
 * (first delays below 0.5 s, 1 s, 2 s) would have made at least one more attempt in this time.
 */
const LOOP_WATCH_MS = 3500;

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

async function expectSignedOutWithoutLoop(page, sockets) {
  await waitForState(page, 'signed_out');
  assert.equal(await byTestId(page, 'conn-text').textContent(), 'Signed out');
  await byTestId(page, 'login-form').waitFor();
  await page.waitForTimeout(LOOP_WATCH_MS);
  // Neither coming back online nor becoming visible may start a loop when signed out.
  await page.evaluate(() => {
    window.dispatchEvent(new Event('online'));
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.waitForTimeout(500);
  assert.equal(sockets.length, 1, `connection attempts: ${sockets.length}`);
  assert.equal(await page.evaluate(() => window.chatClient.connectAttempts), 1);
  await waitForState(page, 'signed_out');
}

test('an expired cookie shows "signed out" with no reconnect loop', () => withGatewayOutput(gateway, async () => {
  const now = Math.floor(Date.now() / 1000);
  const token = gateway.mintToken({ sub: 'u-expired', name: 'Old Session', role: 'member', iat: now - 7200, exp: now - 3600 });
  const context = await newContext(browser, gateway.baseUrl, { token });
  const { page, sockets } = await openChat(context);
  await expectSignedOutWithoutLoop(page, sockets);
  assert.match(await byTestId(page, 'signin-reason').textContent(), /Signed out/);
  await screenshot(page, 'expired-cookie');
  await context.close();
}));

test('no cookie at all also signs out after one attempt', () => withGatewayOutput(gateway, async () => {
  const context = await newContext(browser, gateway.baseUrl);
  const { page, sockets } = await openChat(context);
  await expectSignedOutWithoutLoop(page, sockets);
  await context.close();
}));

test('a token signed with another secret is refused the same way', () => withGatewayOutput(gateway, async () => {
  const now = Math.floor(Date.now() / 1000);
  const forged = new GatewayProcess({ secret: 'another-secret-of-32-characters!' })
    .mintToken({ sub: 'u-forged', name: 'Forger', role: 'admin', exp: now + 3600 });
  const context = await newContext(browser, gateway.baseUrl, { token: forged });
  const { page, sockets } = await openChat(context);
  await expectSignedOutWithoutLoop(page, sockets);
  await context.close();
}));
