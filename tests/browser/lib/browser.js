/**
 * Headless Chromium for the browser tests (the system's /usr/bin/chromium through playwright-core)
 * and small helpers to drive the chat page by its data-testid attributes.
 */
import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, COOKIE_NAME } from './gateway.js';

export const ARTIFACTS = path.join(REPO_ROOT, 'tests/browser/artifacts');
const EXECUTABLE = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const WAIT_MS = Number(process.env.BROWSER_WAIT_MS ?? 30000);

/**
 * Launches Chromium. Each launch runs on a fresh, empty user-data-dir that playwright creates in
 * the temp directory and removes on close; each context in it is isolated like a new profile.
 */
export async function launchBrowser() {
  return chromium.launch({ executablePath: EXECUTABLE, args: ARGS, headless: true });
}

/** A browser context; with `token`, already signed in through the cookie. */
export async function newContext(browser, baseUrl, { token, viewport = { width: 1000, height: 680 } } = {}) {
  const context = await browser.newContext({ viewport, baseURL: baseUrl });
  context.setDefaultTimeout(WAIT_MS);
  if (token) await context.addCookies([{ name: COOKIE_NAME, value: token, url: baseUrl }]);
  return context;
}

/**
 * Opens the chat page and records every WebSocket it opens and every frame it sends.
 * `waitForSent(predicate)` resolves with the first sent frame (recorded or future) that matches.
 */
export async function openChat(context) {
  const page = await context.newPage();
  const sockets = [];
  const sentFrames = [];
  const waiters = new Set();
  page.on('websocket', (ws) => {
    sockets.push(ws);
    ws.on('framesent', ({ payload }) => {
      const record = { socket: sockets.indexOf(ws), frame: parse(payload) };
      sentFrames.push(record);
      for (const w of waiters) if (w.predicate(record.frame)) w.resolve(record);
    });
  });
  const waitForSent = (predicate) => {
    const seen = sentFrames.find((r) => predicate(r.frame));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { predicate, resolve: (r) => { waiters.delete(w); clearTimeout(timer); resolve(r); } };
      const timer = setTimeout(() => { waiters.delete(w); reject(new Error('no matching frame was sent')); }, WAIT_MS);
      waiters.add(w);
    });
  };
  await page.goto('/');
  return { page, sockets, sentFrames, waitForSent };
}

function parse(payload) {
  try {
    return JSON.parse(String(payload));
  } catch {
    return null;
  }
}

export const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** Waits until the connection indicator shows `state`. */
export async function waitForState(page, state) {
  await page.locator(`[data-testid="conn-state"][data-state="${state}"]`).waitFor();
}

/**
 * Starts recording the page client's state changes, so that a brief state (e.g. `reconnecting`
 * for a few hundred ms) is not missed; `waitForStateSeen` then waits for it in that record.
 */
export async function recordStates(page) {
  await page.evaluate(() => {
    window.stateLog = [];
    window.chatClient.on('state', (info) => window.stateLog.push({ ...info, at: Date.now() }));
  });
}

/** Waits until the recorded states include `state`; returns that state's info. */
export async function waitForStateSeen(page, state) {
  const handle = await page.waitForFunction((s) => window.stateLog.find((info) => info.state === s), state);
  return handle.jsonValue();
}

/** Types `text` into the composer and presses Enter. */
export async function sendMessage(page, text, { adminOnly = false } = {}) {
  const toggle = byTestId(page, 'admin-only-toggle');
  if (adminOnly !== (await toggle.isChecked().catch(() => false))) await toggle.setChecked(adminOnly);
  const input = byTestId(page, 'composer-input');
  await input.fill(text);
  await input.press('Enter');
}

/** The message row whose text is exactly `text`. */
export function messageRow(page, text) {
  return page.locator('[data-testid="message"]').filter({
    has: page.locator('[data-testid="message-text"]', { hasText: exactly(text) }),
  });
}

/** Waits until a sent (acknowledged or delivered) message with `text` is shown. */
export async function waitForMessage(page, text) {
  await messageRow(page, text).and(page.locator('[data-status="sent"]')).waitFor();
}

/** All message texts shown, in order. */
export async function messageTexts(page) {
  return page.locator('[data-testid="message-text"]').allTextContents();
}

/** Switches the page to a guild. */
export async function selectGuild(page, guildId) {
  await byTestId(page, `guild-${guildId}`).click();
  await page.locator(`[data-testid="guild-${guildId}"][aria-current="true"]`).waitFor();
}

/** Saves a screenshot under tests/browser/artifacts/. */
export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: false });
}

function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

/** The positions a WebSocket URL names in its handshake (`?resume=g1:42,g2:17`), as an object. */
export function handshakePositions(url) {
  const value = new URL(url).searchParams.get('resume') ?? '';
  const positions = {};
  for (const item of value.split(',').filter(Boolean)) {
    const at = item.lastIndexOf(':');
    positions[item.slice(0, at)] = Number(item.slice(at + 1));
  }
  return positions;
}
