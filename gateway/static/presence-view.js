/**
 * presence-view.js — the chat page's presence and typing: who is online in the open guild (with
 * the exact count, and "and N more" when the gateway lists only part of a large guild), and the
 * "Ann is typing…" line. Text is set with textContent only, never parsed as HTML.
 */
import { typingText } from '/client/presence.js';

/** Users the panel lists at most (diffs can grow a large guild's list past the snapshot's). */
const MAX_SHOWN = 100;
const ROLE_COLORS = { member: '#3b82f6', club: '#f59e0b', admin: '#ef4444', bot: '#22c55e' };

function safeColor(color, role) {
  return typeof color === 'string' && /^#[0-9a-fA-F]{3,8}$/.test(color) ? color : (ROLE_COLORS[role] ?? ROLE_COLORS.member);
}

/**
 * Renders `view` (`client.presence(guildId)`, or null while unknown) into the presence panel:
 * `ui.count` gets "Online — N", `ui.list` one item per listed user, `ui.more` the rest of a
 * truncated list. `selfId` is marked "(you)".
 */
export function renderPresence(ui, view, selfId) {
  ui.panel.dataset.available = String(view?.available ?? false);
  ui.panel.dataset.count = String(view?.count ?? 0);
  if (!view) {
    ui.count.textContent = 'Online';
    ui.list.replaceChildren();
    ui.more.hidden = true;
    return;
  }
  if (!view.available) {
    ui.count.textContent = 'Online — unavailable';
    ui.list.replaceChildren();
    ui.more.hidden = true;
    return;
  }
  ui.count.textContent = `Online — ${view.count}`;
  const shown = view.online.slice(0, MAX_SHOWN);
  ui.list.replaceChildren(...shown.map((user) => userItem(user, selfId)));
  const rest = view.count - shown.length;
  ui.more.hidden = rest <= 0;
  ui.more.textContent = rest > 0 ? `and ${rest} more` : '';
}

function userItem(user, selfId) {
  const li = document.createElement('li');
  li.className = 'online-user';
  li.dataset.testid = 'online-user';
  li.dataset.userId = String(user.id);
  const dot = document.createElement('span');
  dot.className = 'online-dot';
  dot.setAttribute('aria-hidden', 'true');
  const name = document.createElement('span');
  name.className = 'online-name';
  name.dataset.testid = 'online-name';
  name.textContent = String(user.name ?? user.id);
  name.style.color = safeColor(user.color, user.role);
  li.append(dot, name);
  if (String(user.id) === String(selfId)) {
    const you = document.createElement('span');
    you.className = 'online-you';
    you.textContent = '(you)';
    li.append(you);
  }
  return li;
}

/** Shows "Ann is typing…" (or nothing) for `users` typing in the open guild. */
export function renderTyping(el, users) {
  el.textContent = typingText(users);
  el.dataset.count = String(users.length);
}
