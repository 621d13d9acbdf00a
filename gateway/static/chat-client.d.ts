/**
 * Types of chat-client.js — the browser client of the guild chat gateway (`/ws`, wire contract
 * in DESIGN.md): reconnect with backoff, resume in the handshake, dedup, optimistic sends,
 * presence and typing.
 */
import type { PresenceEvent, PresenceView, TypingEvent } from './presence.js';

export type { PresenceEvent, PresenceView, TypingEvent } from './presence.js';

export type State = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'signed_out' | 'closed';

export const States: Readonly<{
  IDLE: 'idle';
  CONNECTING: 'connecting';
  CONNECTED: 'connected';
  RECONNECTING: 'reconnecting';
  OFFLINE: 'offline';
  SIGNED_OUT: 'signed_out';
  CLOSED: 'closed';
}>;

export const CloseCodes: Readonly<{
  SERVER_RESTARTING: 1012;
  SESSION_EXPIRED: 4001;
  POLICY_VIOLATION: 4008;
  TOO_SLOW: 4009;
  CLIENT_DEAD_CONNECTION: 4000;
}>;

/** Guilds one handshake names at most. */
export const MAX_HANDSHAKE_POSITIONS: number;

export type Role = 'member' | 'club' | 'admin' | 'bot' | (string & {});

export interface User {
  id: string;
  name: string;
  role: Role;
  color?: string;
}

export interface Message {
  guildId: string;
  messageId: string;
  adminOnly: boolean;
  from: User;
  text: string;
  /** RFC 3339 timestamp. */
  ts: string;
}

export interface Hello {
  type: 'hello';
  protocol: number;
  connectionId: string;
  user: User;
  guilds: string[];
  admin: boolean;
  heartbeatMs: number;
  maxTextChars: number;
}

export interface Outgoing {
  messageId: string;
  guildId: string;
  text: string;
  adminOnly: boolean;
  requestBot: boolean;
  status: 'pending' | 'sent' | 'failed';
  seq: number | null;
  error: { code: string; message?: string } | null;
  createdAt: string;
}

export interface StateInfo {
  state: State;
  previous?: State;
  nextAttemptAt?: number;
  reason?: string;
  code?: number;
}

export interface ClientError {
  code: string;
  message?: string;
  ref?: string;
  guildId?: string;
  messageId?: string;
  outgoing?: Outgoing;
}

/** The payload (`event.detail`) of each event the client emits. */
export interface ChatClientEvents {
  state: StateInfo;
  hello: Hello;
  message: { seq: number; message: Message; own: boolean };
  ack: { messageId: string; seq: number; ref: string; outgoing?: Outgoing };
  error: ClientError;
  resumed: { guildId: string; replayed: number; gap: boolean };
  outgoing: { outgoing: Outgoing };
  presence: PresenceEvent;
  typing: TypingEvent;
}

export interface ReconnectPolicy {
  minMs: number;
  maxMs: number;
  factor: number;
}

export interface ChatClientOptions {
  /** WebSocket URL (default: `/ws` of the page's origin). */
  url?: string;
  /** Prefix of the HTTP API (default: same origin). */
  apiBase?: string;
  /** Only `json`. */
  encoding?: 'json';
  reconnect?: Partial<ReconnectPolicy>;
  connectTimeoutMs?: number;
  /** A connection this old resets the backoff when it closes. */
  stableAfterMs?: number;
  /** Largest random delay before reconnecting after close 1012. */
  restartJitterMs?: number;
  /** messageIds remembered for dedup. */
  seenLimit?: number;
  /** Ping interval; default: the hello's `heartbeatMs`. */
  heartbeatMs?: number;
  /** Name resume positions in the handshake (default true); false: a `resume` frame. */
  resumeInHandshake?: boolean;
  /** How long a typing frame shows its user (default 6000 ms). */
  typingShowMs?: number;
  random?: () => number;
}

export interface SendRequest {
  guildId: string;
  text: string;
  adminOnly?: boolean;
  requestBot?: boolean;
  messageId?: string;
}

export interface HistoryPage {
  messages: Array<{ seq: number; message: Message }>;
  hasMore: boolean;
  /** With `hasMore`: the `before` of the next page (a short page may still have more). */
  nextBefore?: number;
}

export interface Me {
  user: User;
  guilds: Array<string | { id: string; name?: string }>;
  admin: boolean;
}

/** A reconnecting, resuming chat connection. */
export class ChatClient extends EventTarget {
  constructor(options?: ChatClientOptions);
  readonly state: State;
  readonly stateInfo: StateInfo;
  /** The last hello, or null before the first. */
  readonly hello: Hello | null;
  /** Last seq seen per guild id. */
  readonly positions: Map<string, number>;
  /** Optimistic sends not yet acknowledged, by messageId. */
  readonly pending: Map<string, Outgoing>;
  /** Every send made through this client, by messageId. */
  readonly outgoing: Map<string, Outgoing>;
  readonly connectAttempts: number;

  /** Listens to an event; returns a function that removes the listener. */
  on<K extends keyof ChatClientEvents>(type: K, fn: (detail: ChatClientEvents[K], event: CustomEvent<ChatClientEvents[K]>) => void): () => void;
  connect(): void;
  close(): void;
  destroy(): void;
  reconnectNow(): void;
  send(request: SendRequest): Outgoing;
  retry(messageId: string): Outgoing | null;
  /** Says this user is typing in a guild; throttled to one frame per guild per 2 s. */
  typing(guildId: string): boolean;
  /** A guild's presence, or null before its snapshot. */
  presence(guildId: string): PresenceView | null;
  /** Users typing in a guild now (never this user). */
  typingUsers(guildId: string): User[];
  history(guildId: string, options?: { before?: number; limit?: number }): Promise<HistoryPage>;
  me(): Promise<Me | null>;
  api(path: string, init?: RequestInit): Promise<Response>;
}

/** Full-jitter backoff delay for reconnect attempt `attempt` (0-based). */
export function backoffDelay(attempt: number, policy: ReconnectPolicy, random?: () => number): number;
/** A fresh client messageId. */
export function newMessageId(): string;
/** Whether `id` is a valid client messageId. */
export function isValidMessageId(id: unknown): id is string;
/** `url` with the handshake's `resume` parameter for `positions`. */
export function withResume(url: string, positions: Map<string, number>): string;
