// The benchmark's Node reference: a minimal Socket.IO 4 server shaped like the system we replace
// (shared/reference/original-behaviour.md): HS256 JWT from the cookie, `auth.token` or a Bearer
// header; rooms `guild:{id}`; `chat:message` in with an ack and out to the guild's room, through
// @socket.io/redis-adapter when REDIS_URL is set (as the original ran). Like the original it
// stores nothing. Differences kept on purpose for a like-for-like load: guilds come from the
// token (the dev login puts them there) instead of a per-user lookup, and every message carries a
// per-guild `seq` (the load generator checks order with it), as our gateway's do.
//
// Also answers `GET /healthz` and `POST /api/dev/login` `{id, name, role, guilds}` →
// `{token, user}`, the two HTTP calls `loadtest` makes.
// Environment: LISTEN_ADDR (default 127.0.0.1:3000), JWT_SECRET (default random), REDIS_URL,
// HEARTBEAT_MS (ping interval, default 25000, as our gateway's).
import { createServer } from 'node:http';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

const [HOST, PORT] = (process.env.LISTEN_ADDR ?? '127.0.0.1:3000').split(':');
const SECRET = process.env.JWT_SECRET ?? randomBytes(16).toString('hex');
const HEARTBEAT_MS = Number(process.env.HEARTBEAT_MS ?? 25000);
const COOKIE = 'slimy_admin_token';
const COLORS = { member: '#3b82f6', club: '#f59e0b', admin: '#ef4444', bot: '#22c55e' };
const MAX_TEXT = 2000;

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

function sign(claims) {
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

function verify(token) {
  const [head, body, mac] = String(token ?? '').split('.');
  if (!mac) return null;
  const want = createHmac('sha256', SECRET).update(`${head}.${body}`).digest();
  const got = Buffer.from(mac, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return null;
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
  return claims.exp > Date.now() / 1000 ? claims : null;
}

function tokenOf(handshake) {
  const cookie = (handshake.headers.cookie ?? '').split(';').map((c) => c.trim().split('='))
    .find(([name]) => name === COOKIE)?.[1];
  const bearer = /^Bearer (.+)$/.exec(handshake.headers.authorization ?? '')?.[1];
  return cookie ?? handshake.auth?.token ?? bearer;
}

async function devLogin(req, res) {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  const { id = randomBytes(6).toString('hex'), name = id, role = 'member', guilds = [] } = JSON.parse(raw || '{}');
  const user = { id, name, role, color: COLORS[role] ?? COLORS.member };
  const token = sign({ sub: id, user, guilds, exp: Math.floor(Date.now() / 1000) + 12 * 3600 });
  res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': `${COOKIE}=${token}; Path=/; HttpOnly; SameSite=Lax` });
  res.end(JSON.stringify({ token, user }));
}

const http = createServer((req, res) => {
  if (req.url === '/healthz') return res.writeHead(200).end('ok');
  if (req.method === 'POST' && req.url === '/api/dev/login') {
    return devLogin(req, res).catch(() => res.writeHead(400).end());
  }
  if (!req.url.startsWith('/socket.io')) res.writeHead(404).end();
});

const io = new Server(http, {
  pingInterval: HEARTBEAT_MS,
  pingTimeout: HEARTBEAT_MS,
  maxHttpBufferSize: 65536,
  cors: { origin: true, credentials: true },
});

if (process.env.REDIS_URL) {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.use((socket, next) => {
  const claims = verify(tokenOf(socket.handshake));
  if (!claims) return next(new Error('not_authorized'));
  if (claims.user.role !== 'admin' && claims.guilds.length === 0) return next(new Error('no_guild_context'));
  socket.data.claims = claims;
  next();
});

const seqs = new Map();

io.on('connection', (socket) => {
  const { user, guilds } = socket.data.claims;
  const admin = user.role === 'admin';
  for (const g of guilds) socket.join(`guild:${g}`);
  if (admin) socket.join('admins');
  socket.on('chat:message', (payload, ack) => {
    const reply = typeof ack === 'function' ? ack : () => {};
    if (payload === null || typeof payload !== 'object') return reply({ error: 'server_error' });
    const text = typeof payload.text === 'string' ? payload.text.trim() : '';
    const guildId = payload.guildId;
    if (!text) return reply({ error: 'Message cannot be empty.' });
    if (!guildId) return reply({ error: 'Missing guild.' });
    if (!admin && !guilds.includes(guildId)) return reply({ error: 'You do not have access to this guild.' });
    if (payload.adminOnly && !admin) return reply({ error: 'Only admins can send admin-only messages.' });
    if (text.length > MAX_TEXT) return reply({ error: 'message_too_long' });
    const seq = (seqs.get(guildId) ?? 0) + 1;
    seqs.set(guildId, seq);
    const messageId = typeof payload.messageId === 'string' ? payload.messageId
      : `${Date.now().toString(36)}${socket.id.slice(0, 4)}`;
    const message = {
      from: user, text, ts: new Date().toISOString(), guildId, messageId,
      adminOnly: Boolean(payload.adminOnly), seq,
    };
    const room = message.adminOnly ? io.to('admins') : io.to(`guild:${guildId}`);
    room.emit('chat:message', message);
    reply({ ok: true, messageId, seq });
  });
});

http.listen(Number(PORT), HOST, () => console.log(`node reference at http://${HOST}:${PORT}`));
