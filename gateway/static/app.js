/**
 * app.js — the chat page: shows the connection state, signs in through dev login, switches
 * guilds, renders history and live messages, who is online and who is typing in the open guild
 * (presence-view.js), and sends (and says it is typing) through the ChatClient library.
 * Every piece of user or server text is set with textContent, never parsed as HTML.
 * `window.chatClient` exposes the live client for debugging.
 */
import { ChatClient, States } from '/client/chat-client.js';
import { renderPresence, renderTyping } from '/static/presence-view.js';

const ROLE_COLORS = { member: '#3b82f6', club: '#f59e0b', admin: '#ef4444', bot: '#22c55e' };
const HISTORY_PAGE = 50;
/** Send errors worth a Retry button (the others would fail the same way again). */
const RETRYABLE = new Set(['rate_limited', 'server_error']);
const STATE_TEXT = {
  idle: 'Starting…', connecting: 'Connecting…', connected: 'Connected', offline: 'Offline',
  signed_out: 'Signed out', closed: 'Disconnected',
};

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const ui = {
  conn: $('conn-state'), connText: $('conn-text'), reconnectNow: $('reconnect-now'),
  me: $('me'), meName: $('me-name'), meRole: $('me-role'),
  signin: $('signin'), signinReason: $('signin-reason'), loginForm: $('login-form'),
  loginError: $('login-error'), chat: $('chat'), guildList: $('guild-list'),
  banner: $('error-banner'), bannerText: $('error-banner-text'), bannerClose: $('error-banner-close'),
  scroller: $('messages-scroller'), loadOlder: $('load-older'), empty: $('empty'),
  list: $('message-list'), composer: $('composer'), input: $('composer-input'),
  adminOnlyLabel: $('admin-only-label'), adminOnly: $('admin-only-toggle'), counter: $('char-counter'),
  template: document.getElementById('message-template'),
  presence: { panel: $('presence'), count: $('online-count'), list: $('online-list'), more: $('online-more') },
  typing: $('typing-indicator'),
};

/** Page state: the client, who we are, and per guild its messages by messageId. */
const page = { client: null, hello: null, guilds: new Map(), current: null, countdown: null, rows: new Map() };

// ---- guild model ------------------------------------------------------------------------------

function guild(id) {
  let g = page.guilds.get(id);
  if (!g) {
    g = { id, name: id, entries: new Map(), hasMore: false, historyLoaded: false, unread: 0 };
    page.guilds.set(id, g);
  }
  return g;
}

/** Inserts or updates one message of a guild and mirrors it on screen when that guild is shown. */
function upsert(guildId, messageId, patch) {
  const g = guild(guildId);
  const entry = g.entries.get(messageId) ?? { messageId, seq: null, message: null, status: null, error: null };
  Object.assign(entry, patch);
  g.entries.set(messageId, entry);
  if (guildId === page.current) renderEntry(entry);
  return entry;
}

function sortKey(entry) {
  return entry.seq ?? Number.MAX_SAFE_INTEGER;
}

function oldestSeq(g) {
  let min = null;
  for (const e of g.entries.values()) if (e.seq != null && (min == null || e.seq < min)) min = e.seq;
  return min;
}

// ---- rendering ----------------------------------------------------------------------------------

function renderEntry(entry) {
  let row = page.rows.get(entry.messageId);
  const stick = isNearBottom();
  if (!row) {
    row = ui.template.content.firstElementChild.cloneNode(true);
    row.querySelector('[data-testid="message-retry"]').addEventListener('click', () => page.client.retry(entry.messageId));
    page.rows.set(entry.messageId, row);
  }
  fillRow(row, entry);
  placeRow(row, entry);
  ui.empty.hidden = page.rows.size > 0;
  if (stick) scrollToBottom();
}

function fillRow(row, entry) {
  const m = entry.message;
  const role = m.from?.role ?? 'member';
  const sender = row.querySelector('[data-testid="message-sender"]');
  sender.textContent = m.from?.name ?? 'unknown';
  sender.style.color = safeColor(m.from?.color, role);
  row.dataset.messageId = entry.messageId;
  row.dataset.seq = entry.seq ?? '';
  row.dataset.status = entry.status ?? 'sent';
  row.dataset.role = role;
  row.classList.toggle('is-admin-only', Boolean(m.adminOnly));
  row.classList.toggle('is-bot', role === 'bot');
  row.querySelector('[data-testid="bot-badge"]').hidden = role !== 'bot';
  row.querySelector('[data-testid="admin-badge"]').hidden = !m.adminOnly;
  const time = row.querySelector('[data-testid="message-time"]');
  const when = new Date(m.ts);
  time.dateTime = Number.isNaN(when.getTime()) ? '' : when.toISOString();
  time.textContent = Number.isNaN(when.getTime()) ? '' : when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  time.title = Number.isNaN(when.getTime()) ? '' : when.toLocaleString();
  row.querySelector('[data-testid="message-status"]').textContent = entry.status === 'pending' ? 'sending…' : '';
  row.querySelector('[data-testid="message-text"]').textContent = m.text ?? '';
  const error = row.querySelector('[data-testid="message-error"]');
  error.hidden = !entry.error;
  row.querySelector('[data-testid="message-error-text"]').textContent = entry.error ? describeError(entry.error) : '';
  row.querySelector('[data-testid="message-retry"]').hidden = entry.status !== 'failed' || !RETRYABLE.has(entry.error?.code);
}

/** Keeps the list ordered by seq; pending messages (no seq yet) stay at the end. */
function placeRow(row, entry) {
  const key = sortKey(entry);
  let before = null;
  for (let el = ui.list.lastElementChild; el; el = el.previousElementSibling) {
    if (el === row) continue;
    const other = page.guilds.get(page.current)?.entries.get(el.dataset.messageId);
    if (!other || sortKey(other) <= key) break;
    before = el;
  }
  if (before ? row.nextElementSibling !== before : ui.list.lastElementChild !== row) ui.list.insertBefore(row, before);
}

function renderGuild() {
  page.rows.clear();
  ui.list.replaceChildren();
  const g = page.guilds.get(page.current);
  if (!g) return;
  g.unread = 0;
  const entries = [...g.entries.values()].sort((a, b) => sortKey(a) - sortKey(b));
  for (const entry of entries) renderEntry(entry);
  ui.empty.hidden = entries.length > 0 || !g.historyLoaded;
  ui.loadOlder.hidden = !g.hasMore;
  renderGuildList();
  renderPresenceAndTyping();
  scrollToBottom();
}

function renderPresenceAndTyping() {
  const id = page.current;
  renderPresence(ui.presence, id ? page.client.presence(id) : null, page.hello?.user?.id);
  renderTyping(ui.typing, id ? page.client.typingUsers(id) : []);
}

function renderGuildList() {
  const items = [...page.guilds.values()].map((g) => {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'guild';
    button.dataset.testid = `guild-${g.id}`;
    button.dataset.guildId = g.id;
    button.setAttribute('aria-current', String(g.id === page.current));
    const name = document.createElement('span');
    name.textContent = `# ${g.name}`;
    button.append(name);
    if (g.unread > 0 && g.id !== page.current) {
      const badge = document.createElement('span');
      badge.className = 'unread';
      badge.dataset.testid = 'unread';
      badge.textContent = String(g.unread);
      badge.setAttribute('aria-label', `${g.unread} unread`);
      button.append(badge);
    }
    button.addEventListener('click', () => selectGuild(g.id));
    li.append(button);
    return li;
  });
  ui.guildList.replaceChildren(...items);
}

function renderState(info) {
  clearInterval(page.countdown);
  ui.conn.dataset.state = info.state;
  ui.reconnectNow.hidden = info.state !== States.RECONNECTING;
  ui.conn.title = info.reason ?? '';
  if (info.state === States.RECONNECTING) {
    const tick = () => {
      const secs = Math.max(0, Math.ceil((info.nextAttemptAt - Date.now()) / 1000));
      ui.connText.textContent = `Reconnecting in ${secs} s`;
    };
    tick();
    page.countdown = setInterval(tick, 250);
  } else {
    ui.connText.textContent = STATE_TEXT[info.state] ?? info.state;
  }
  const signedOut = info.state === States.SIGNED_OUT;
  ui.signin.hidden = !signedOut;
  if (signedOut) {
    ui.chat.hidden = true;
    ui.me.hidden = true;
    ui.signinReason.textContent = info.reason ? `Signed out: ${describeCode(info.reason)}` : 'Signed out.';
    ui.loginForm.querySelector('input').focus();
  }
}

function renderMe(user, admin) {
  ui.me.hidden = false;
  ui.meName.textContent = user.name;
  ui.meName.style.color = safeColor(user.color, user.role);
  ui.me.dataset.userId = user.id;
  ui.meRole.textContent = user.role;
  ui.adminOnlyLabel.hidden = !admin;
  if (!admin) ui.adminOnly.checked = false;
}

function showBanner(text) {
  ui.bannerText.textContent = text;
  ui.banner.hidden = false;
}

// ---- actions ----------------------------------------------------------------------------------

async function selectGuild(id) {
  page.current = id;
  localStorage.setItem('chat.guild', id);
  renderGuild();
  const g = guild(id);
  if (!g.historyLoaded) await loadHistory(g);
}

async function loadHistory(g, before) {
  const shown = g.id;
  const heightBefore = ui.scroller.scrollHeight;
  try {
    const res = await page.client.history(g.id, { before, limit: HISTORY_PAGE });
    for (const { seq, message } of res.messages ?? []) {
      const known = g.entries.get(message.messageId);
      upsert(g.id, message.messageId, { seq, message, status: known?.status === 'failed' ? known.status : 'sent' });
    }
    g.hasMore = Boolean(res.hasMore);
    g.nextBefore = res.nextBefore;
    g.historyLoaded = true;
  } catch (err) {
    showBanner(`Could not load history: ${describeCode(err.code ?? String(err))}`);
  }
  if (page.current !== shown) return;
  ui.loadOlder.hidden = !g.hasMore;
  ui.empty.hidden = g.entries.size > 0;
  if (before == null) scrollToBottom();
  else ui.scroller.scrollTop += ui.scroller.scrollHeight - heightBefore;
}

function submitMessage() {
  const text = ui.input.value.trim();
  if (!text || !page.current || overLimit(text)) return;
  page.client.send({ guildId: page.current, text, adminOnly: ui.adminOnly.checked && Boolean(page.hello?.admin) });
  ui.input.value = '';
  updateCounter();
  scrollToBottom();
}

async function devLogin(form) {
  ui.loginError.textContent = '';
  const data = new FormData(form);
  const name = String(data.get('name') ?? '').trim();
  if (!name) {
    ui.loginError.textContent = 'Enter a name.';
    return;
  }
  const guilds = String(data.get('guilds') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const res = await fetch('/api/dev/login', {
    method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, role: data.get('role'), guilds }),
  }).catch(() => null);
  if (!res) {
    ui.loginError.textContent = 'The server cannot be reached.';
  } else if (res.status === 404) {
    ui.loginError.textContent = 'Dev login is off on this server. Sign in through your site, then reload.';
  } else if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    ui.loginError.textContent = `Sign-in refused: ${describeCode(body.error ?? `HTTP ${res.status}`)}`;
  } else {
    startClient();
  }
}

// ---- client events ------------------------------------------------------------------------------

function onHello(hello) {
  const sameUser = page.hello?.user?.id === hello.user.id;
  page.hello = hello;
  if (!sameUser) {
    page.guilds.clear();
    page.current = null;
  }
  for (const id of hello.guilds ?? []) guild(id);
  renderMe(hello.user, hello.admin);
  ui.signin.hidden = true;
  ui.chat.hidden = false;
  ui.input.maxLength = hello.maxTextChars * 2;
  updateCounter();
  loadGuildNames();
  if (page.current) return renderGuildList(); // a reconnect: keep the view and its scroll position
  const saved = localStorage.getItem('chat.guild');
  const next = page.guilds.has(saved) ? saved : hello.guilds?.[0];
  if (next) selectGuild(next);
  else renderGuildList();
}

async function loadGuildNames() {
  const me = await page.client.me().catch(() => null);
  for (const g of me?.guilds ?? []) {
    if (g && typeof g === 'object' && g.id != null && g.name) guild(String(g.id)).name = g.name;
  }
  renderGuildList();
}

function onMessage({ seq, message }) {
  const known = page.guilds.get(message.guildId)?.entries.get(message.messageId);
  upsert(message.guildId, message.messageId, { seq, message, status: 'sent', error: known?.error ?? null });
  if (message.guildId !== page.current) {
    guild(message.guildId).unread += 1;
    renderGuildList();
  }
}

function onOutgoing({ outgoing }) {
  const g = guild(outgoing.guildId);
  const known = g.entries.get(outgoing.messageId);
  const message = known?.message ?? {
    guildId: outgoing.guildId, messageId: outgoing.messageId, adminOnly: outgoing.adminOnly,
    from: page.hello?.user ?? { name: 'me', role: 'member' }, text: outgoing.text, ts: outgoing.createdAt,
  };
  upsert(outgoing.guildId, outgoing.messageId, {
    message, seq: outgoing.seq ?? known?.seq ?? null, status: outgoing.status, error: outgoing.error,
  });
}

function onError(error) {
  if (error.outgoing) return; // shown on the message through its outgoing record
  const target = error.messageId && findEntry(error.messageId);
  if (target) upsert(target.guildId, error.messageId, { error: { code: error.code, message: error.message } });
  else showBanner(describeError(error));
}

function onResumed({ guildId, gap }) {
  if (gap) showBanner(`Some messages in #${guild(guildId).name} are no longer available.`);
}

function onPresence({ guildId }) {
  if (guildId === page.current) renderPresence(ui.presence, page.client.presence(guildId), page.hello?.user?.id);
}

function onTyping({ guildId, users }) {
  if (guildId === page.current) renderTyping(ui.typing, users);
}

function findEntry(messageId) {
  for (const g of page.guilds.values()) if (g.entries.has(messageId)) return { guildId: g.id };
  return null;
}

function startClient() {
  page.client?.destroy();
  const client = new ChatClient({ encoding: 'json', reconnect: { minMs: 500, maxMs: 20000, factor: 2 } });
  page.client = client;
  window.chatClient = client;
  client.on('state', renderState);
  client.on('hello', onHello);
  client.on('message', onMessage);
  client.on('outgoing', onOutgoing);
  client.on('error', onError);
  client.on('resumed', onResumed);
  client.on('presence', onPresence);
  client.on('typing', onTyping);
  client.connect();
}

// ---- helpers ------------------------------------------------------------------------------

function safeColor(color, role) {
  return typeof color === 'string' && /^#[0-9a-fA-F]{3,8}$/.test(color) ? color : (ROLE_COLORS[role] ?? ROLE_COLORS.member);
}

const CODE_TEXT = {
  not_authorized: 'your session has expired or is invalid',
  no_guild_context: 'you are not a member of any guild',
  bot_unavailable: 'slimy.ai could not answer right now',
  rate_limited: 'you are sending too fast',
  message_too_long: 'the message is too long',
  forbidden_guild: 'you do not have access to this guild',
  admin_only_forbidden: 'only admins can send admin-only messages',
};

function describeCode(code) {
  return CODE_TEXT[code] ?? code;
}

function describeError(error) {
  return CODE_TEXT[error.code] ? `${CODE_TEXT[error.code]} (${error.code})` : (error.message || error.code);
}

function textLength(text) {
  return [...text].length;
}

function overLimit(text) {
  return page.hello != null && textLength(text) > page.hello.maxTextChars;
}

function updateCounter() {
  const max = page.hello?.maxTextChars;
  const len = textLength(ui.input.value.trim());
  ui.counter.textContent = max && len > max * 0.8 ? `${len} / ${max}` : '';
  ui.counter.classList.toggle('over', Boolean(max) && len > max);
}

function isNearBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

// ---- wiring -------------------------------------------------------------------------------------

ui.loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  devLogin(ui.loginForm);
});
ui.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  submitMessage();
});
ui.input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submitMessage();
  }
});
ui.input.addEventListener('input', () => {
  updateCounter();
  if (page.current && ui.input.value.trim()) page.client.typing(page.current);
});
ui.loadOlder.addEventListener('click', () => {
  const g = page.guilds.get(page.current);
  // `nextBefore` (not the oldest seq shown): a page that stopped at the server's scan cap may
  // hold fewer messages than asked, even none, and still have more before it.
  if (g) loadHistory(g, g.nextBefore ?? oldestSeq(g) ?? undefined);
});
ui.bannerClose.addEventListener('click', () => { ui.banner.hidden = true; });
ui.reconnectNow.addEventListener('click', () => page.client.reconnectNow());

startClient();
