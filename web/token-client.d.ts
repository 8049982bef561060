// Types of token-client.js.

/** A clock in milliseconds since the Unix epoch, such as `{ now: () => Date.now() }`. */
export interface Clock {
  now(): number;
}

/** The timer functions the client uses; the browser's by default. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(id: unknown): void;
}

/** A token and its schedule. Times ending in `Ms` are local clock milliseconds. */
export interface TokenInfo {
  /** The Access Token (a JWT), to hand to a Twilio SDK. */
  token: string;
  /** The identity the server minted the token for. */
  identity: string;
  /** Lifetime in seconds. */
  ttl: number;
  /** Expiry by the server's clock, in Unix seconds. */
  expiresAt: number;
  /** When the server advises a refresh, by its clock, in Unix seconds. */
  refreshAfter: number;
  /** The server's clock when it minted the token, in Unix seconds. */
  serverTime: number;
  /** Estimated server clock minus local clock, in milliseconds. */
  offsetMs: number;
  /** Expiry converted to the local clock. */
  expiresAtMs: number;
  /** When the client plans to refresh, by the local clock. */
  refreshAtMs: number;
  /** When the response arrived, by the local clock. */
  receivedAtMs: number;
}

export type ErrorKind = 'credentials' | 'network' | 'http' | 'invalid_response';

/** A failed token request. */
export class TokenRequestError extends Error {
  readonly kind: ErrorKind;
  /** The HTTP status for `http` errors, otherwise 0. */
  readonly status: number;
  /** The server's error code, such as `invalid_session`, or an empty string. */
  readonly code: string;
  /** The server's error message, or an empty string. */
  readonly serverMessage: string;
  constructor(
    kind: ErrorKind,
    message: string,
    details?: { status?: number; code?: string; serverMessage?: string },
  );
}

/** A token that cannot be decoded. */
export class TokenFormatError extends Error {}

export interface ScheduleDetail {
  reason: 'refresh' | 'retry';
  /** Local time of the next request. */
  atMs: number;
  delayMs: number;
  /** For retries: the number of the retry, from 1. */
  attempt?: number;
}

export interface ErrorDetail {
  error: TokenRequestError;
  /** How many requests failed before this one since the last success. */
  attempt: number;
  /** The wait before the next attempt, or null when the client stops. */
  retryInMs: number | null;
  willRetry: boolean;
}

export type StopReason = 'unauthorized' | 'forbidden' | 'rejected' | 'stopped';

export interface StopDetail {
  reason: StopReason;
  error?: TokenRequestError;
}

export interface TokenClientOptions {
  /** The token endpoint. Default `/token`. */
  url?: string;
  /**
   * Cookie mode for fetch: `same-origin` (default) for a page served by the token server,
   * `include` for a page on another origin listed in the server's `allowed_origins`, `omit`
   * for bearer credentials only.
   */
  credentials?: RequestCredentials;
  /** Returns a bearer credential (such as an API key issued to this app) for each request. */
  getBearer?: () => string | null | undefined | Promise<string | null | undefined>;
  /** The JSON body of `POST /token`, such as `{ grants: ['chat'] }`. Default `{}`. */
  body?: Record<string, unknown>;
  onToken?: (info: TokenInfo) => void;
  onSchedule?: (detail: ScheduleDetail) => void;
  onError?: (detail: ErrorDetail) => void;
  onStop?: (detail: StopDetail) => void;
  /** Default 0.1: a refresh may start up to 10% of the refresh window early. */
  jitterRatio?: number;
  /** Default 1000. */
  minRefreshDelayMs?: number;
  /** First retry step in ms. Default 1000. */
  retryBaseMs?: number;
  /** Maximum retry wait in ms. Default 30000. */
  retryMaxMs?: number;
  /** Growth of the retry step. Default 2. */
  retryFactor?: number;
  /** Default 5000. */
  wakeCheckIntervalMs?: number;
  /** Default 5000. */
  wakeDriftMs?: number;
  clock?: Clock;
  /**
   * A clock that only moves forward, in milliseconds from any origin, used to keep a wall
   * clock set back from delaying a refresh. Default `performance.now()`, or `clock` when
   * `clock` is given.
   */
  monotonic?: Clock;
  timers?: Timers;
  random?: () => number;
  fetch?: typeof fetch;
  /** The target of the `pageshow`, `online` and `visibilitychange` listeners. Default `window`. */
  window?: Window | null;
}

export type ClientState = 'idle' | 'fetching' | 'scheduled' | 'retrying' | 'stopped';

export class TokenClient extends EventTarget {
  constructor(options?: TokenClientOptions);
  readonly current: TokenInfo | null;
  readonly offsetMs: number;
  readonly state: ClientState;
  readonly nextAtMs: number | null;
  /** Resolves with the first token, or null when the first request failed. */
  start(): Promise<TokenInfo | null>;
  /** Fetches a new token now, or joins the request in flight. */
  refreshNow(): Promise<void | null>;
  stop(): void;
  msUntilExpiry(): number | null;
  msUntilNextRequest(): number | null;
  /** Handles a wake-up, as the client does for `pageshow`, `online` and `visibilitychange`. */
  wake(cause: string): void;
  addEventListener(type: 'token', listener: (event: CustomEvent<TokenInfo>) => void): void;
  addEventListener(type: 'schedule', listener: (event: CustomEvent<ScheduleDetail>) => void): void;
  addEventListener(type: 'error', listener: (event: CustomEvent<ErrorDetail>) => void): void;
  addEventListener(type: 'stop', listener: (event: CustomEvent<StopDetail>) => void): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null): void;
}

export const DEFAULTS: Readonly<Required<Pick<TokenClientOptions,
  'url' | 'credentials' | 'jitterRatio' | 'minRefreshDelayMs' | 'retryBaseMs' | 'retryMaxMs' |
  'retryFactor' | 'wakeCheckIntervalMs' | 'wakeDriftMs'>>>;

export function clockOffsetMs(serverTimeSec: number, sentAtMs: number, receivedAtMs: number): number;

export function planRefresh(input: {
  refreshAfterSec: number;
  expiresAtSec: number;
  offsetMs: number;
  nowMs: number;
  random?: () => number;
  jitterRatio?: number;
  minRefreshDelayMs?: number;
}): { refreshAtMs: number; delayMs: number; expiresAtMs: number; jitterMs: number };

export function backoffDelayMs(attempt: number, options?: {
  baseMs?: number;
  maxMs?: number;
  factor?: number;
  random?: () => number;
  retryAfterMs?: number;
}): number;

export function shouldRefreshOnWake(input: { nowMs: number; refreshAtMs: number | null | undefined }): boolean;

export function classifyResponse(status: number): 'ok' | 'retry' | 'stop' | 'fail';

export function parseRetryAfterMs(value: string | null | undefined): number;

/** Decodes a JWT for display WITHOUT checking its signature. */
export function decodeUnverified(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> };
