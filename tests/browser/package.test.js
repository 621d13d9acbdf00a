/**
 * The npm package of the browser client (gateway/static/package.json): `npm pack` holds exactly
 * the modules, their declarations, the README and package.json; the packed tarball installs into
 * a fresh project (offline: it has no dependencies) and imports from node by its package name,
 * both entry points; and an app written in TypeScript against it type-checks with
 * `tsc --noEmit` (strict), while a misuse does not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './lib/gateway.js';

const run = promisify(execFile);
const PACKAGE_DIR = path.join(REPO_ROOT, 'gateway/static');
const TSC = path.join(REPO_ROOT, 'tests/browser/node_modules/.bin/tsc');
const EXPECTED_FILES = [
  'README.md', 'chat-client.d.ts', 'chat-client.js', 'package.json', 'presence.d.ts', 'presence.js', 'wire.js',
];

/** Packs the client into a temp dir and installs it into a fresh project there. */
async function packAndInstall() {
  const dir = await mkdtemp(path.join(tmpdir(), 'chat-client-pack-'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: PACKAGE_DIR });
  const [packed] = JSON.parse(stdout);
  const app = path.join(dir, 'app');
  await run('mkdir', ['-p', app]);
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', path.join(dir, packed.filename)], { cwd: app });
  return { dir, app, packed };
}

test('npm pack: the modules, their types, README and package.json, nothing else', async () => {
  const { dir, app, packed } = await packAndInstall();
  try {
    const manifest = JSON.parse(await readFile(path.join(PACKAGE_DIR, 'package.json'), 'utf8'));
    assert.equal(packed.name, manifest.name);
    assert.equal(packed.version, manifest.version);
    assert.deepEqual(packed.files.map((f) => f.path).sort(), EXPECTED_FILES);

    // Import by package name from the installed copy: both entry points, through `exports`.
    const script = `
      const m = await import('@guild-chat/chat-client');
      const p = await import('@guild-chat/chat-client/presence');
      const client = new m.ChatClient({ url: 'ws://127.0.0.1:1/ws' });
      const out = client.send({ guildId: 'g1', text: 'hi' });
      console.log(JSON.stringify({
        exports: Object.keys(m).sort(), presence: Object.keys(p).sort(),
        status: out.status, valid: m.isValidMessageId(out.messageId), state: client.state,
        line: p.typingText([{ name: 'Ann' }, { name: 'Bob' }]),
        same: import.meta.resolve('@guild-chat/chat-client').includes('node_modules/@guild-chat/chat-client/'),
      }));
      client.destroy();`;
    const { stdout } = await run('node', ['--input-type=module', '-e', script], { cwd: app });
    const seen = JSON.parse(stdout);
    for (const name of ['ChatClient', 'States', 'CloseCodes', 'backoffDelay', 'newMessageId', 'isValidMessageId']) {
      assert.ok(seen.exports.includes(name), `exports ${name}`);
    }
    for (const name of ['PresenceBook', 'TypingThrottle', 'typingText']) assert.ok(seen.presence.includes(name), `presence exports ${name}`);
    assert.equal(seen.status, 'pending');
    assert.ok(seen.valid);
    assert.equal(seen.state, 'idle');
    assert.equal(seen.line, 'Ann and Bob are typing…');
    assert.ok(seen.same, 'resolved from the installed package');
    await assert.rejects(run('node', ['--input-type=module', '-e', "await import('@guild-chat/chat-client/wire.js')"], { cwd: app }),
      'files outside `exports` are not importable');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const APP_TS = `
import { ChatClient, States, type Message, type PresenceView, type Outgoing } from '@guild-chat/chat-client';
import { PresenceBook, typingText } from '@guild-chat/chat-client/presence';

const client = new ChatClient({ url: 'ws://localhost/ws', reconnect: { maxMs: 5000 } });
const names: string[] = [];
const off = client.on('message', ({ seq, message }) => { const m: Message = message; names.push(m.from.name + seq); });
client.on('presence', (p) => { const view: PresenceView = p; names.push(String(view.count), ...p.left); });
client.on('typing', ({ guildId, users }) => names.push(guildId + typingText(users)));
client.on('state', ({ state }) => { if (state === States.SIGNED_OUT) off(); });
const out: Outgoing = client.send({ guildId: 'g1', text: 'hi' });
const sent: boolean = client.typing('g1');
const view: PresenceView | null = client.presence('g1');
const book = new PresenceBook({ now: () => 0 });
book.applySnapshot({ guildId: 'g1', count: 1, online: [{ id: 'u1', name: 'Ann', role: 'member' }] });
export { out, sent, view, names };
`;

const BAD_TS = `
import { ChatClient } from '@guild-chat/chat-client';
const client = new ChatClient();
client.send({ guild: 'g1', text: 'hi' });
client.send({ guildId: 'g1', text: 1 });
client.on('presence', (p) => p.nope);
`;

test('the declarations type-check an app (tsc --noEmit, strict) and catch a misuse', async () => {
  const { dir, app } = await packAndInstall();
  try {
    const tsconfig = {
      compilerOptions: {
        strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext',
        lib: ['es2022', 'dom'], skipLibCheck: false, types: [],
      },
      files: ['app.ts'],
    };
    await writeFile(path.join(app, 'tsconfig.json'), JSON.stringify(tsconfig));
    await writeFile(path.join(app, 'app.ts'), APP_TS);
    const ok = await run(TSC, ['-p', 'tsconfig.json'], { cwd: app }).catch((err) => err);
    assert.equal(ok.code ?? 0, 0, `tsc on a correct app:\n${ok.stdout ?? ''}${ok.stderr ?? ''}`);

    await writeFile(path.join(app, 'app.ts'), BAD_TS);
    const bad = await run(TSC, ['-p', 'tsconfig.json'], { cwd: app }).catch((err) => err);
    assert.notEqual(bad.code ?? 0, 0, 'tsc refuses a misuse');
    const out = `${bad.stdout}${bad.stderr}`;
    assert.match(out, /app\.ts\(4,.*'guild'/, out);
    assert.match(out, /app\.ts\(5,.*'number' is not assignable to type 'string'/, out);
    assert.match(out, /app\.ts\(6,.*'nope'/, out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
