/**
 * Types of presence.js — presence and typing state of the chat client
 * (DESIGN.md "Presence and typing").
 */
import type { User } from './chat-client.js';

/** The gateway forwards one `typing` per user per guild per this many ms. */
export const TYPING_SEND_INTERVAL_MS: number;
/** How long a `typing` frame shows its user. */
export const TYPING_SHOW_MS: number;

/** A guild's presence as the client knows it. */
export interface PresenceView {
  guildId: string;
  /** Users online (exact, from the gateway). */
  count: number;
  /** Whether more are online than `online` lists. */
  truncated: boolean;
  /** False while the gateway cannot read the guild's presence (chat still works). */
  available: boolean;
  /** Users listed, sorted by name (this user included). */
  online: User[];
}

/** The `presence` event: the guild's current view and what changed. */
export interface PresenceEvent extends PresenceView {
  joined: User[];
  left: string[];
  /** True for a snapshot (after hello), false for a diff. */
  snapshot: boolean;
}

/** The `typing` event: who is typing in a guild now (never this user), oldest first. */
export interface TypingEvent {
  guildId: string;
  users: User[];
}

export interface PresenceFrame {
  type?: 'presence';
  guildId: string;
  count?: number;
  truncated?: boolean;
  available?: boolean;
  online?: User[];
}

export interface PresenceDiffFrame {
  type?: 'presence_diff';
  guildId: string;
  count?: number;
  joined?: User[];
  left?: string[];
}

export interface TypingFrame {
  type?: 'typing';
  guildId: string;
  user: User;
}

/** Pure presence and typing state of one client. */
export class PresenceBook {
  constructor(options?: { now?: () => number; typingShowMs?: number });
  applySnapshot(frame: PresenceFrame): PresenceView | null;
  applyDiff(frame: PresenceDiffFrame): PresenceView | null;
  get(guildId: string): PresenceView | null;
  isOnline(guildId: string, userId: string): boolean;
  retain(guildIds: Iterable<string>): boolean;
  noteTyping(frame: TypingFrame, selfId?: string | null): boolean;
  stopTyping(guildId: string, userId: string): boolean;
  typing(guildId: string): User[];
  expire(): string[];
  nextExpiryIn(): number | null;
  clearTyping(): string[];
}

/** At most one `typing` frame per guild per `intervalMs` from this client. */
export class TypingThrottle {
  constructor(options?: { intervalMs?: number; now?: () => number });
  allow(guildId: string): boolean;
  reset(guildId: string): void;
}

/** "Ann is typing…", "Ann and Bob are typing…", …, "Several people are typing…". */
export function typingText(users: ReadonlyArray<Pick<User, 'name'>>): string;

/** Glues a PresenceBook and a TypingThrottle to a client (used by ChatClient). */
export class PresenceTracker {
  constructor(options: {
    emit: (type: 'presence' | 'typing', detail: PresenceEvent | TypingEvent) => void;
    write: (frame: { type: 'typing'; guildId: string }) => boolean;
    selfId: () => string | null | undefined;
    now?: () => number;
    typingShowMs?: number;
    typingIntervalMs?: number;
    timers?: { setTimeout: (fn: () => void, ms: number) => unknown; clearTimeout: (id: unknown) => void };
  });
  readonly book: PresenceBook;
  readonly throttle: TypingThrottle;
  typing(guildId: string): boolean;
  stop(): void;
}
