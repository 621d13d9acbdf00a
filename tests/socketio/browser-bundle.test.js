// The socket.io-client browser bundle in headless Chromium, as the admin UI uses it: a page served
// by this test from its own origin loads `socket.io.min.js` from the npm package, the browser holds
// the cookie a dev login set, and `io(gateway, {withCredentials: true, transports})` connects with
// polling only, websocket only, and the admin UI's ["websocket", "polling"]; `chat:message` goes
// out with its ack and comes back. Without the cookie: one `connect_error` `not_authorized`.
// Chromium as in tests/browser/lib/browser.js (/usr/bin/chromium through playwright-core).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';
import { startGateway, guildId, connect, connected, collect, withOutput } from './lib/harness.js';

const EXECUTABLE = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
// The package's exports do not list dist/: read it from the installed package.
const BUNDLE = new URL('./node_modules/socket.io-client/dist/socket.io.min.js', import.meta.url);

/** The page: the bundle, and one function the test drives. */
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>socket.io bundle</title>
<script src="/socket.io.min.js"></script>
<script>
window.roundTrip = async (url, transports, guildId, text) => {
  const socket = io(url, { withCredentials: true, transports, reconnection: false });
  try {
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', (err) => reject(new Error('connect_error ' + err.message)));
    });
    const echoed = new Promise((resolve) => socket.on('chat:message', (m) => { if (m.text === text) resolve(m); }));
    const ack = await socket.timeout(15000).emitWithAck('chat:message', { guildId, text });
    const message = await echoed;
    return { ack, message, transport: socket.io.engine.transport.name };
  } finally {
    socket.close();
  }
};
window.refusals = (url) => new Promise((resolve) => {
  const socket = io(url, { withCredentials: true, transports: ['polling'] });
  const errors = [];
  socket.on('connect_error', (err) => errors.push(err.message));
  setTimeout(() => { const active = socket.active; socket.close(); resolve({ errors, active }); }, 2000);
});
</script>`;

let gw;
let pageServer;
let pageOrigin;
let browser;
before(async () => {
  const bundle = await readFile(BUNDLE);
  pageServer = createServer((req, res) => {
    if (req.url === '/socket.io.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    }
  });
  await new Promise((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
  pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
  // The page is another origin, as the admin UI is: the gateway allows it.
  gw = await startGateway({ ALLOWED_ORIGINS: pageOrigin });
  browser = await chromium.launch({ executablePath: EXECUTABLE, args: ARGS, headless: true });
});
after(async () => {
  await browser?.close();
  await gw?.stop();
  pageServer?.close();
});

/** A browser context holding the cookie of a dev login (the login's own Set-Cookie). */
async function signedIn(name, guilds) {
  const context = await browser.newContext();
  const login = await context.request.post(`${gw.baseUrl}/api/dev/login`, { data: { name, role: 'member', guilds } });
  assert.equal(login.status(), 200);
  const cookies = await context.cookies(gw.baseUrl);
  assert.ok(cookies.some((c) => c.name === 'slimy_admin_token' && c.httpOnly), 'the login set the HttpOnly cookie');
  const page = await context.newPage();
  await page.goto(`${pageOrigin}/`);
  return { context, page };
}

for (const transports of [['polling'], ['websocket'], ['websocket', 'polling']]) {
  test(`the browser bundle with the login cookie, transports ${JSON.stringify(transports)}: chat:message with ack, both ways`, () => withOutput(gw, async () => {
    const g = guildId('bundle');
    const { context, page } = await signedIn('Ann', [g]);
    // A node client in the same guild sees the browser's message too.
    const { token } = await gw.devLogin({ name: 'Bob', guilds: [g] });
    const bob = await connected(connect(gw.baseUrl, { token }));
    try {
      const bobInbox = collect(bob);
      const text = `from chromium ${transports.join('+')}`;
      const result = await page.evaluate(
        ([url, t, guild, body]) => window.roundTrip(url, t, guild, body),
        [gw.baseUrl, transports, g, text],
      );
      assert.equal(result.ack.ok, true, JSON.stringify(result.ack));
      assert.equal(typeof result.ack.seq, 'number');
      assert.equal(result.message.messageId, result.ack.messageId);
      assert.equal(result.message.seq, result.ack.seq);
      assert.equal(result.message.from.name, 'Ann');
      assert.equal(result.transport, transports[0]);
      const seen = await bobInbox.waitFor((m) => m.text === text);
      assert.equal(seen.seq, result.ack.seq);
    } finally {
      bob.close();
      await context.close();
    }
  }));
}

test('the browser bundle without a cookie: one connect_error not_authorized, no retry', () => withOutput(gw, async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${pageOrigin}/`);
    const { errors, active } = await page.evaluate((url) => window.refusals(url), gw.baseUrl);
    assert.deepEqual(errors, ['not_authorized']);
    assert.equal(active, false, 'the client gave up after the refusal');
  } finally {
    await context.close();
  }
}));
