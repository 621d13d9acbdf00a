/**
 * Runs the real gateway binary for the browser tests: starts it in embedded mode (or
 * distributed, with the router and bot workers, when NATS_URL and REDIS_URL are given) on
 * loopback port 0, reads the ports it bound from the line it prints once listening, waits for
 * `GET /healthz`, and can SIGSTOP / SIGKILL / restart it on the same port. Each process binds
 * its own ports: a port picked here and closed before the child bound it could be handed to
 * another process meanwhile, and that process's /healthz would pass for the gateway's (a
 * worker's or an ops listener's answers 404 to dev login).
 * Also signs users in through `POST /api/dev/login` and mints HS256 tokens with node's crypto.
 */
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const COOKIE_NAME = 'slimy_admin_token';

const BIN = (envName, name) => path.resolve(REPO_ROOT, process.env[envName] ?? `target/debug/${name}`);
/** The lines a gateway prints once both its listeners are bound (gateway/src/main.rs `announce`). */
const GATEWAY_LISTENING = /^(?:guild chat \(embedded mode\) at|gateway listening on) http:\/\/(\S+)$/;
const GATEWAY_OPS = /^ops endpoints \(\/metrics, \/healthz, \/readyz\) on http:\/\/(\S+)$/;
/** The line a worker prints once its ops listener is bound (router-worker, bot-worker `main`). */
const WORKER_OPS = /^[a-z-]+ (?:serving|taking jobs) \(ops on (\S+)\)$/;
const START_TIMEOUT_MS = 30000;

/**
 * A loopback TCP port free right now. Only for a server that cannot bind port 0 and say what it
 * got (HAProxy): the port may be handed to another process before that server binds it.
 */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** A random JWT secret of 32 characters. */
export function newSecret() {
  return randomBytes(16).toString('hex');
}

/** Whether the environment asks for distributed mode. */
export function distributedEnv() {
  const { NATS_URL, REDIS_URL } = process.env;
  return NATS_URL && REDIS_URL ? { NATS_URL, REDIS_URL } : null;
}

/** One child process with its output kept for failure reports. */
class Child {
  constructor(name, bin, env) {
    this.name = name;
    this.bin = bin;
    this.env = env;
    this.proc = null;
    this.output = '';
  }

  /**
   * Spawns the binary. `announce` are patterns of stdout lines the child prints once it
   * listens; `this.announced` resolves with each one's first capture, in order, or rejects
   * when the child ends before printing them all.
   */
  start(announce = []) {
    // NATS_URL / REDIS_URL given to the tests are for distributed runs only: an embedded
    // gateway must not inherit them.
    const inherited = { ...process.env };
    delete inherited.NATS_URL;
    delete inherited.REDIS_URL;
    const proc = spawn(this.bin, [], {
      env: { ...inherited, RUST_LOG: process.env.RUST_LOG ?? 'info', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.exited = once(proc, 'exit');
    const keep = (chunk) => { this.output = (this.output + chunk).slice(-20000); };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    proc.on('error', (err) => keep(`spawn error: ${err.message}\n`));
    proc.on('exit', (code, signal) => keep(`[exited: code ${code}, signal ${signal}]\n`));
    this.announced = watchLines(proc, announce, () => new Error(`${this.name} ended before it was listening:\n${this.output}`));
    this.announced.catch(() => {}); // awaited by the starter; a later crash is not unhandled
  }

  /** The announced captures (see `start`), failing after START_TIMEOUT_MS. */
  async listening() {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} not listening after ${START_TIMEOUT_MS} ms:\n${this.output}`)), START_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.announced, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  alive() {
    return this.proc != null && this.proc.exitCode == null && this.proc.signalCode == null;
  }

  signal(sig) {
    if (this.alive()) this.proc.kill(sig);
  }

  async kill() {
    if (!this.alive()) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `ms`. */
  async terminate(ms = 5000) {
    if (!this.alive()) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), ms);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Resolves with the first capture of each of `patterns` in `proc`'s stdout lines, in order;
 * rejects with `ended()` when its output closes first.
 */
function watchLines(proc, patterns, ended) {
  return new Promise((resolve, reject) => {
    const found = patterns.map(() => undefined);
    let partial = '';
    const onData = (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        patterns.forEach((pattern, i) => { found[i] ??= pattern.exec(line.trimEnd())?.[1]; });
      }
      if (found.every((f) => f !== undefined)) {
        proc.stdout.off('data', onData);
        resolve(found);
      }
    };
    if (patterns.length === 0) return resolve(found);
    proc.stdout.on('data', onData);
    proc.once('close', () => reject(ended()));
  });
}

/** The port of `host:port`. */
function portOf(address) {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** A gateway (plus workers in distributed mode): its port bound at the first start, kept on restarts. */
export class GatewayProcess {
  /**
   * `distributed`: `{NATS_URL, REDIS_URL}` or null for embedded mode. `withWorkers`: whether this
   * gateway also runs the router and bot workers (one gateway of a distributed set does).
   */
  constructor({ secret = newSecret(), port, distributed = null, withWorkers = true, env = {} } = {}) {
    this.secret = secret;
    this.extraEnv = env;
    this.port = port;
    this.distributed = distributed;
    this.withWorkers = withWorkers;
    this.workers = [];
  }

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Its ops listener (`OPS_LISTEN_ADDR`: /metrics, /healthz, /readyz). */
  get opsUrl() {
    return `http://127.0.0.1:${this.opsPort}`;
  }

  env() {
    return {
      // Port 0 at the first start: the gateway binds one and prints it (see `launch`).
      LISTEN_ADDR: `127.0.0.1:${this.port ?? 0}`,
      OPS_LISTEN_ADDR: '127.0.0.1:0',
      DEV_LOGIN: 'true',
      JWT_SECRET: this.secret,
      ...(this.distributed ?? {}),
      ...this.extraEnv,
    };
  }

  /** Starts the workers (distributed, `withWorkers`) and the gateway; stops them all if it fails. */
  async start() {
    try {
      if (this.distributed && this.withWorkers && this.workers.length === 0) await this.startWorkers();
      await this.launch();
    } catch (err) {
      await this.stop();
      throw err;
    }
    return this;
  }

  /**
   * Spawns the gateway and waits until it prints the addresses it bound, then for its /healthz
   * there. On a restart it must bind `this.port` again: if another process took that port
   * while it was down, the gateway exits ("cannot listen") and this says so.
   */
  async launch() {
    this.gateway = new Child('gateway', BIN('GATEWAY_BIN', 'gateway'), this.env());
    this.gateway.start([GATEWAY_LISTENING, GATEWAY_OPS]);
    const [listen, ops] = await this.gateway.listening();
    this.port = portOf(listen);
    this.opsPort = portOf(ops);
    await this.waitHealthy();
  }

  /** The router and bot workers, each with its ops port (/healthz) on a port it binds itself. */
  async startWorkers() {
    for (const [envName, name] of [['ROUTER_WORKER_BIN', 'router-worker'], ['BOT_WORKER_BIN', 'bot-worker']]) {
      const child = new Child(name, BIN(envName, name), { ...this.distributed, LISTEN_ADDR: '127.0.0.1:0' });
      child.start([WORKER_OPS]);
      this.workers.push(child);
      const [ops] = await child.listening();
      await waitHealthy(child, `http://${ops}`);
    }
  }

  async waitHealthy() {
    await waitHealthy(this.gateway, this.baseUrl);
  }

  /** Freezes the gateway: connections stay open but nothing is answered. */
  pause() {
    this.gateway.signal('SIGSTOP');
  }

  resume() {
    this.gateway.signal('SIGCONT');
  }

  /** SIGKILL, as a crash: no close frames, no drain. */
  async crash() {
    await this.gateway.kill();
  }

  /** SIGTERM: the graceful shutdown (clients are closed with 1012); waits for the exit. */
  async terminate() {
    this.gateway.signal('SIGTERM');
    await this.gateway.exited;
  }

  /** Starts the gateway again on the same port (killing it first if it still runs). */
  async restart() {
    await this.gateway.kill();
    await this.launch();
  }

  async stop() {
    this.gateway?.signal('SIGCONT');
    await this.gateway?.kill();
    // Gracefully: a router hands its ingress partitions back on SIGTERM, so the next test's
    // router on the same NATS serves them at once instead of after the lease expires.
    for (const w of this.workers) await w.terminate();
  }

  output() {
    return [this.gateway, ...this.workers].map((c) => `--- ${c?.name}\n${c?.output}`).join('\n');
  }

  /** Dev login over HTTP: creates or replaces the session, returns `{token, user}`. */
  async devLogin({ id, name, role = 'member', guilds }) {
    const res = await fetch(`${this.baseUrl}/api/dev/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...(id ? { id } : {}), name, role, guilds }),
    });
    if (!res.ok) throw new Error(`dev login failed: ${res.status} ${await res.text()}`);
    return res.json();
  }

  /** `GET /api/guilds/{id}/messages` with a token, newest first. */
  async history(token, guildId, limit = 200) {
    const res = await fetch(`${this.baseUrl}/api/guilds/${guildId}/messages?limit=${limit}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!res.ok) throw new Error(`history failed: ${res.status} ${await res.text()}`);
    return res.json();
  }

  /** An HS256 token signed with this gateway's secret. */
  mintToken(claims) {
    return mintHs256(claims, this.secret);
  }
}

/** Waits for `GET {baseUrl}/healthz` to answer 200 while `child` runs. */
async function waitHealthy(child, baseUrl, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.alive()) throw new Error(`${child.name} exited during start:\n${child.output}`);
    const res = await fetch(`${baseUrl}/healthz`).catch(() => null);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.name} not healthy after ${timeoutMs} ms:\n${child.output}`);
}

/** Signs `claims` as an HS256 JWT with node's crypto. */
export function mintHs256(claims, secret) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = createHmac('sha256', secret).update(body).digest('base64url');
  return `${body}.${sig}`;
}
