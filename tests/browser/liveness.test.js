/**
 * Connection liveness in the browser against a real embedded gateway: the browser going offline
 * (no attempts while offline, reconnect at once when back online), a silent, frozen gateway
 * (SIGSTOP) detected by the client's own pings after two heartbeat intervals, and a token that
 * expires while connected (close 4001: signed out, no loop). The gateway runs with
 * HEARTBEAT_MS=500, which its hello announces, so the test does not wait 50 s.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayProcess } from './lib/gateway.js';
import {
  byTestId, launchBrowser, newContext, openChat, recordStates, screenshot, sendMessage, waitForMessage,
  waitForState, waitForStateSeen,
} from './lib/browser.js';
import { guildId, signedInPage, withGatewayOutput } from './lib/fixtures.js';

/** How long to watch that nothing is attempted while offline (backoff would try within 0.5 s). */
const OFFLINE_WATCH_MS = 2500;
const HEARTBEAT_MS = 500;

let gateway;
let browser;

before(async () => {
  gateway = await new GatewayProcess({ env: { HEARTBEAT_MS: String(HEARTBEAT_MS) } }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

test('offline: no attempts while offline, reconnect and resume when back online', () => withGatewayOutput(gateway, async () => {
  const g = guildId('net');
  const ann = await signedInPage(browser, gateway, { name: 'Ann', guilds: [g] });
  const bob = await signedInPage(browser, gateway, { name: 'Bob', guilds: [g] });

  await ann.context.setOffline(true);
  await waitForState(ann.page, 'offline');
  assert.equal(await byTestId(ann.page, 'conn-text').textContent(), 'Offline');
  await screenshot(ann.page, 'offline');
  const attemptsWhenOffline = ann.sockets.length;
  await sendMessage(bob.page, 'said while Ann was offline');
  await waitForMessage(bob.page, 'said while Ann was offline');
  await sendMessage(ann.page, 'written while offline');
  await ann.page.waitForTimeout(OFFLINE_WATCH_MS);
  assert.equal(ann.sockets.length, attemptsWhenOffline, 'no connection attempts while offline');

  await ann.context.setOffline(false);
  await waitForState(ann.page, 'connected');
  assert.equal(ann.sockets.length, attemptsWhenOffline + 1, 'one attempt when back online');
  await waitForMessage(ann.page, 'said while Ann was offline');
  await waitForMessage(ann.page, 'written while offline');
  await waitForMessage(bob.page, 'written while offline');
  await ann.context.close();
  await bob.context.close();
}));

test('a frozen gateway is detected by missing pongs and the page reconnects', () => withGatewayOutput(gateway, async () => {
  const g = guildId('dead');
  const ann = await signedInPage(browser, gateway, { name: 'Ann', guilds: [g] });
  assert.equal(await ann.page.evaluate(() => window.chatClient.hello.heartbeatMs), HEARTBEAT_MS);
  await ann.waitForSent((f) => f?.type === 'ping');
  await recordStates(ann.page);
  gateway.pause();
  try {
    const info = await waitForStateSeen(ann.page, 'reconnecting');
    assert.equal(info.reason, 'no traffic for two heartbeat intervals');
  } finally {
    gateway.resume();
  }
  await waitForState(ann.page, 'connected');
  assert.ok(ann.sockets.length >= 2, 'a new connection was opened');
  await sendMessage(ann.page, 'alive again');
  await waitForMessage(ann.page, 'alive again');
  await ann.context.close();
}));

test('a token expiring while connected (close 4001) signs out without a reconnect loop', () => withGatewayOutput(gateway, async () => {
  const g = guildId('exp');
  const { user } = await gateway.devLogin({ name: 'Short Lived', guilds: [g] });
  const exp = Math.floor(Date.now() / 1000) + 2;
  const token = gateway.mintToken({ sub: user.id, name: user.name, role: user.role, exp });
  const context = await newContext(browser, gateway.baseUrl, { token });
  const { page, sockets } = await openChat(context);
  await waitForState(page, 'connected');
  await waitForState(page, 'signed_out');
  const info = await page.evaluate(() => window.chatClient.stateInfo);
  assert.equal(info.code, 4001);
  assert.ok(info.reason, 'the close reason is kept');
  assert.match(await byTestId(page, 'signin-reason').textContent(), /^Signed out: /);
  await page.waitForTimeout(OFFLINE_WATCH_MS);
  assert.equal(sockets.length, 1, 'no reconnect after 4001');
  await screenshot(page, 'expired-while-connected');
  await context.close();
}));
