/**
 * Shared set-up of the browser tests: a signed-in chat page for a user made through dev login,
 * unique guild ids per test, and a failure report carrying the gateway's output.
 */
import { randomBytes } from 'node:crypto';
import { newContext, openChat, waitForState } from './browser.js';

/** A guild id unique to one test run, so tests sharing a gateway do not see each other. */
export function guildId(label) {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/**
 * Signs a user in over HTTP (dev login), opens the chat page with that cookie and waits until it
 * is connected. Returns the page, its context, the user, the token and the socket records.
 */
export async function signedInPage(browser, gateway, { name, role = 'member', guilds, id, viewport }) {
  const { token, user } = await gateway.devLogin({ id, name, role, guilds });
  const context = await newContext(browser, gateway.baseUrl, { token, viewport });
  const chat = await openChat(context);
  await waitForState(chat.page, 'connected');
  return { ...chat, context, user, token };
}

/** Runs `fn`; on failure adds the gateway's recent output to the error. */
export async function withGatewayOutput(gateway, fn) {
  try {
    return await fn();
  } catch (err) {
    const report = `\n--- gateway output (tail) ---\n${gateway.output().slice(-6000)}`;
    err.message += report;
    if (typeof err.stack === 'string') err.stack += report;
    throw err;
  }
}
