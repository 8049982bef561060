// token-client.js: keeps a Twilio Access Token from a twilio-token server fresh in the browser.
//
// An ES module with no dependencies and no build step. The scheduling rules are pure functions
// (clockOffsetMs, planRefresh, backoffDelayMs, shouldRefreshOnWake, classifyResponse) and the
// TokenClient class takes its clock, timers, fetch and random source as options, so tests can
// drive it with a fake clock. Types: token-client.d.ts. Guide: README.md in this folder.

/** Defaults for TokenClient options; every value can be overridden. */
export const DEFAULTS = Object.freeze({
  url: '/token',
  credentials: 'same-origin',
  // Share of the window between refresh_after and expires_at by which a refresh may start
  // early, so that many tabs or clients do not all refresh at the same second.
  jitterRatio: 0.1,
  // Shortest wait before a scheduled refresh, so a token whose refresh_after has already
  // passed cannot cause a refresh loop.
  minRefreshDelayMs: 1000,
  retryBaseMs: 1000,
  retryMaxMs: 30000,
  retryFactor: 2,
  // How often the sleep check runs, and how much later than planned a tick must arrive for
  // the client to assume the machine slept or the tab was frozen.
  wakeCheckIntervalMs: 5000,
  wakeDriftMs: 5000,
});

/**
 * Estimates how far the server's clock is ahead of the local one, in milliseconds.
 *
 * `server_time` is whole seconds, truncated, read while the request was in flight, so the best
 * estimate of the server's clock at that moment is its middle second (+500 ms), compared with
 * the middle of the local send and receive times. The error is at most half the round trip
 * plus 500 ms.
 */
export function clockOffsetMs(serverTimeSec, sentAtMs, receivedAtMs) {
  const serverMs = serverTimeSec * 1000 + 500;
  const localMs = (sentAtMs + receivedAtMs) / 2;
  return Math.round(serverMs - localMs);
}

/**
 * Plans the next refresh of a token response, in local clock milliseconds.
 *
 * The server's `refresh_after` and `expires_at` are converted to local time with `offsetMs`
 * (server minus local). The refresh starts up to `jitterRatio` of the refresh window early,
 * never later than `refresh_after`, and at least `minRefreshDelayMs` after `nowMs`.
 */
export function planRefresh({
  refreshAfterSec,
  expiresAtSec,
  offsetMs,
  nowMs,
  random = Math.random,
  jitterRatio = DEFAULTS.jitterRatio,
  minRefreshDelayMs = DEFAULTS.minRefreshDelayMs,
}) {
  const refreshAfterMs = refreshAfterSec * 1000 - offsetMs;
  const expiresAtMs = expiresAtSec * 1000 - offsetMs;
  const windowMs = Math.max(0, expiresAtMs - refreshAfterMs);
  const jitterMs = Math.floor(random() * jitterRatio * windowMs);
  const delayMs = Math.max(minRefreshDelayMs, refreshAfterMs - jitterMs - nowMs);
  return { refreshAtMs: nowMs + delayMs, delayMs, expiresAtMs, jitterMs };
}

/**
 * Returns the wait before retry number `attempt` (0 for the first retry). The step grows from
 * `baseMs` by `factor` per attempt up to `maxMs`, and the wait is a random point in the upper
 * half of the step ("equal jitter"). Retries thus spread out but never come sooner than half
 * the step.
 *
 * A `Retry-After` value from the server, when given, is a lower bound, even above `maxMs`:
 * retrying sooner would only meet the same refusal.
 */
export function backoffDelayMs(attempt, {
  baseMs = DEFAULTS.retryBaseMs,
  maxMs = DEFAULTS.retryMaxMs,
  factor = DEFAULTS.retryFactor,
  random = Math.random,
  retryAfterMs = 0,
} = {}) {
  const stepMs = Math.min(maxMs, baseMs * factor ** Math.max(0, attempt));
  const delayMs = stepMs / 2 + random() * (stepMs / 2);
  return Math.round(Math.max(Math.min(maxMs, delayMs), retryAfterMs));
}

/**
 * Decides whether a wake-up (the tab shown again, the network back, a missed timer) calls for
 * an immediate refresh: the planned refresh time has passed, or no token is held at all.
 */
export function shouldRefreshOnWake({ nowMs, refreshAtMs }) {
  if (refreshAtMs === undefined || refreshAtMs === null) {
    return true;
  }
  return nowMs >= refreshAtMs;
}

/**
 * Classifies an HTTP status by what the client does next. `ok` is success. `retry` covers 5xx,
 * 408 and 429, which can pass. `stop` covers 401 and 403, where only a new sign-in or a policy
 * change helps. `fail` is any other status: the server will keep rejecting the request.
 */
export function classifyResponse(status) {
  if (status >= 200 && status < 300) {
    return 'ok';
  }
  if (status === 401 || status === 403) {
    return 'stop';
  }
  if (status >= 500 || status === 408 || status === 429) {
    return 'retry';
  }
  return 'fail';
}

/** Parses a `Retry-After` header given in seconds; returns milliseconds, or 0. */
export function parseRetryAfterMs(value) {
  if (!value) {
    return 0;
  }
  const seconds = Number(value.trim());
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

/**
 * Decodes a JWT's header and payload WITHOUT checking its signature, for display only. Never
 * base a security decision on the result.
 */
export function decodeUnverified(jwt) {
  const parts = String(jwt).split('.');
  if (parts.length !== 3) {
    throw new TokenFormatError(`a JWT has 3 parts separated by dots, this one has ${parts.length}`);
  }
  return { header: decodeSegment(parts[0], 'header'), payload: decodeSegment(parts[1], 'payload') };
}

function decodeSegment(segment, name) {
  try {
    const base64 = segment.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new TokenFormatError(`the JWT ${name} is not base64url-encoded JSON: ${error.message}`);
  }
}

/** A token that cannot be decoded. */
export class TokenFormatError extends Error {
  constructor(message) {
    super(message);
    this.name = 'TokenFormatError';
  }
}

/**
 * A failed token request. `kind` is `credentials` (getBearer threw), `network`, `http` or
 * `invalid_response`. For `http` it has `status`, and `code` and `serverMessage` from the
 * server's `{"error": {...}}` body.
 */
export class TokenRequestError extends Error {
  constructor(kind, message, { status = 0, code = '', serverMessage = '' } = {}) {
    super(message);
    this.name = 'TokenRequestError';
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.serverMessage = serverMessage;
  }
}

const systemClock = { now: () => Date.now() };

// A clock that only moves forward, for measuring waits when the wall clock is set back.
const monotonicClock =
  typeof performance === 'undefined' ? systemClock : { now: () => performance.now() };

function systemTimers() {
  return {
    setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
    clearTimeout: (id) => globalThis.clearTimeout(id),
    setInterval: (callback, ms) => globalThis.setInterval(callback, ms),
    clearInterval: (id) => globalThis.clearInterval(id),
  };
}

/**
 * Fetches tokens and refreshes them before they expire.
 *
 * Events (also given to the matching `on…` option):
 * - `token`: `detail` is the TokenInfo of a new token (`onToken`).
 * - `schedule`: `detail` is `{ reason, atMs, delayMs, attempt? }` for the next request
 *   (`onSchedule`); `reason` is `refresh` or `retry`.
 * - `error`: `detail` is `{ error, attempt, retryInMs, willRetry }` for each failed request
 *   (`onError`).
 * - `stop`: `detail` is `{ reason, error? }` when the client stops (`onStop`); `reason` is
 *   `unauthorized` (401), `forbidden` (403), `rejected` (another 4xx) or `stopped` (stop()).
 */
export class TokenClient extends EventTarget {
  constructor(options = {}) {
    super();
    this.options = { ...DEFAULTS, ...options };
    this.clock = options.clock ?? systemClock;
    // With an injected wall clock and no monotonic one, tests keep one time line.
    this.monotonic = options.monotonic ?? (options.clock ? options.clock : monotonicClock);
    this.timers = options.timers ?? systemTimers();
    this.random = options.random ?? Math.random;
    this.fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    this.window = options.window ?? (typeof window === 'undefined' ? null : window);

    /** The latest TokenInfo, or null. */
    this.current = null;
    /** The estimated server-minus-local clock offset of the latest response, in ms. */
    this.offsetMs = 0;
    /** `idle`, `fetching`, `scheduled`, `retrying` or `stopped`. */
    this.state = 'idle';
    /** The local time of the next planned request, in ms, or null. */
    this.nextAtMs = null;

    this.attempt = 0;
    this.timer = null;
    /** The monotonic time the timer fires, in ms, or null. */
    this.timerAtMono = null;
    this.inFlight = null;
    /** Counts starts and stops, so that a request of an earlier run is ignored. */
    this.generation = 0;
    this.inFlightGeneration = -1;
    this.lastTickMs = null;
    this.wakeInterval = null;
    this.onWakeEvent = (event) => this.handleWakeEvent(event);
  }

  /**
   * Fetches the first token and keeps refreshing. Resolves with the first TokenInfo, or with
   * null when the first request fails; the `error` and `stop` events tell why.
   */
  async start() {
    this.generation += 1;
    this.state = 'idle';
    this.attempt = 0;
    this.current = null;
    this.listenForWake();
    await this.request();
    return this.current;
  }

  /** Fetches a new token now, unless a request is already in flight. */
  refreshNow() {
    if (this.state === 'stopped') {
      return Promise.resolve(null);
    }
    return this.request();
  }

  /** Cancels the timers, stops listening for wake-ups and emits `stop` with `stopped`. */
  stop() {
    this.halt('stopped');
  }

  /** Milliseconds until the current token expires by the corrected clock, or null. */
  msUntilExpiry() {
    return this.current ? this.current.expiresAtMs - this.clock.now() : null;
  }

  /** Milliseconds until the next planned request, or null. */
  msUntilNextRequest() {
    return this.nextAtMs === null ? null : Math.max(0, this.nextAtMs - this.clock.now());
  }

  request() {
    // A request of an earlier run, before stop() and start(), is not joined: its response may
    // belong to the previous user.
    if (this.inFlight && this.inFlightGeneration === this.generation) {
      return this.inFlight;
    }
    this.clearTimer();
    this.state = 'fetching';
    this.nextAtMs = null;
    const generation = this.generation;
    const flight = this.fetchToken(generation).finally(() => {
      if (this.inFlight === flight) {
        this.inFlight = null;
      }
    });
    this.inFlight = flight;
    this.inFlightGeneration = generation;
    return flight;
  }

  /** Returns true when the run that sent a request has ended: stop() or a new start(). */
  isStale(generation) {
    return this.generation !== generation || this.state === 'stopped';
  }

  async fetchToken(generation) {
    let init;
    try {
      init = await this.requestInit();
    } catch (error) {
      if (!this.isStale(generation)) {
        this.failed(new TokenRequestError('credentials', `getBearer failed: ${error.message}`));
      }
      return;
    }
    // stop() may have run while getBearer was pending.
    if (this.isStale(generation)) {
      return;
    }

    // Taken after getBearer, so that its time does not count as part of the round trip.
    const sentAtMs = this.clock.now();
    let response;
    try {
      response = await this.fetch(this.options.url, init);
    } catch (error) {
      if (this.isStale(generation)) {
        return;
      }
      this.failed(new TokenRequestError('network', `the token request failed: ${error.message}`));
      return;
    }
    const receivedAtMs = this.clock.now();
    if (this.isStale(generation)) {
      return;
    }

    const outcome = classifyResponse(response.status);
    if (outcome !== 'ok') {
      const error = await httpError(response);
      if (this.isStale(generation)) {
        return;
      }
      if (outcome === 'retry') {
        this.failed(error, parseRetryAfterMs(response.headers.get('retry-after')));
      } else {
        this.rejected(outcome, error);
      }
      return;
    }

    let body;
    let invalid = null;
    try {
      body = await response.json();
      checkTokenResponse(body);
    } catch (error) {
      invalid = error;
    }
    // stop() may have run while the body was read.
    if (this.isStale(generation)) {
      return;
    }
    if (invalid) {
      this.failed(new TokenRequestError('invalid_response', `the token response is not valid: ${invalid.message}`));
      return;
    }
    this.accept(body, sentAtMs, receivedAtMs);
  }

  async requestInit() {
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (this.options.getBearer) {
      const bearer = await this.options.getBearer();
      if (bearer) {
        headers.Authorization = `Bearer ${bearer}`;
      }
    }
    return {
      method: 'POST',
      credentials: this.options.credentials,
      headers,
      body: JSON.stringify(this.options.body ?? {}),
      cache: 'no-store',
    };
  }

  accept(body, sentAtMs, receivedAtMs) {
    this.offsetMs = clockOffsetMs(body.server_time, sentAtMs, receivedAtMs);
    const plan = planRefresh({
      refreshAfterSec: body.refresh_after,
      expiresAtSec: body.expires_at,
      offsetMs: this.offsetMs,
      nowMs: receivedAtMs,
      random: this.random,
      jitterRatio: this.options.jitterRatio,
      minRefreshDelayMs: this.options.minRefreshDelayMs,
    });
    this.attempt = 0;
    this.current = {
      token: body.token,
      identity: body.identity,
      ttl: body.ttl,
      expiresAt: body.expires_at,
      refreshAfter: body.refresh_after,
      serverTime: body.server_time,
      offsetMs: this.offsetMs,
      expiresAtMs: plan.expiresAtMs,
      refreshAtMs: plan.refreshAtMs,
      receivedAtMs,
    };
    this.schedule('refresh', plan.delayMs);
    this.emit('token', this.current, this.options.onToken);
  }

  failed(error, retryAfterMs = 0) {
    const retryInMs = backoffDelayMs(this.attempt, {
      baseMs: this.options.retryBaseMs,
      maxMs: this.options.retryMaxMs,
      factor: this.options.retryFactor,
      random: this.random,
      retryAfterMs,
    });
    const attempt = this.attempt;
    this.attempt += 1;
    this.emit('error', { error, attempt, retryInMs, willRetry: true }, this.options.onError);
    this.schedule('retry', retryInMs, attempt + 1);
  }

  rejected(outcome, error) {
    this.emit('error', { error, attempt: this.attempt, retryInMs: null, willRetry: false }, this.options.onError);
    let reason = 'rejected';
    if (outcome === 'stop') {
      reason = error.status === 401 ? 'unauthorized' : 'forbidden';
    }
    this.halt(reason, error);
  }

  schedule(reason, delayMs, attempt) {
    this.clearTimer();
    this.state = reason === 'retry' ? 'retrying' : 'scheduled';
    this.nextAtMs = this.clock.now() + delayMs;
    this.timerAtMono = this.monotonic.now() + delayMs;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.timerAtMono = null;
      this.request();
    }, delayMs);
    const detail = { reason, atMs: this.nextAtMs, delayMs };
    if (attempt !== undefined) {
      detail.attempt = attempt;
    }
    this.emit('schedule', detail, this.options.onSchedule);
  }

  halt(reason, error) {
    if (this.state === 'stopped') {
      return;
    }
    this.generation += 1;
    this.clearTimer();
    this.stopListeningForWake();
    this.state = 'stopped';
    this.nextAtMs = null;
    const detail = error ? { reason, error } : { reason };
    this.emit('stop', detail, this.options.onStop);
  }

  clearTimer() {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
    this.timerAtMono = null;
  }

  listenForWake() {
    this.stopListeningForWake();
    const target = this.window;
    if (target) {
      target.addEventListener('pageshow', this.onWakeEvent);
      target.addEventListener('online', this.onWakeEvent);
      target.document?.addEventListener('visibilitychange', this.onWakeEvent);
    }
    this.lastTickMs = this.clock.now();
    this.wakeInterval = this.timers.setInterval(() => this.checkDrift(), this.options.wakeCheckIntervalMs);
  }

  stopListeningForWake() {
    const target = this.window;
    if (target) {
      target.removeEventListener('pageshow', this.onWakeEvent);
      target.removeEventListener('online', this.onWakeEvent);
      target.document?.removeEventListener('visibilitychange', this.onWakeEvent);
    }
    if (this.wakeInterval !== null) {
      this.timers.clearInterval(this.wakeInterval);
      this.wakeInterval = null;
    }
  }

  handleWakeEvent(event) {
    if (event.type === 'visibilitychange' && this.window?.document?.visibilityState === 'hidden') {
      return;
    }
    this.wake(event.type);
  }

  /** Notices that a timer tick came much later than planned: the machine slept. */
  checkDrift() {
    const nowMs = this.clock.now();
    const lateByMs = nowMs - (this.lastTickMs ?? nowMs) - this.options.wakeCheckIntervalMs;
    this.lastTickMs = nowMs;
    if (lateByMs > this.options.wakeDriftMs) {
      this.wake('timer-drift');
    }
  }

  /**
   * Handles a wake-up: refreshes at once when the planned time has passed, and otherwise
   * sets the timer again from the wall clock, because timers may not count the time a
   * machine spends asleep. The new wait is never longer than the monotonic clock leaves of the
   * old one, so a wall clock set back cannot push the refresh past the token's expiry.
   */
  wake(cause) {
    if (this.state === 'stopped' || this.state === 'fetching' || this.state === 'idle') {
      return;
    }
    const nowMs = this.clock.now();
    if (cause === 'online' && this.state === 'retrying') {
      this.request();
      return;
    }
    if (shouldRefreshOnWake({ nowMs, refreshAtMs: this.nextAtMs })) {
      this.request();
      return;
    }
    let delayMs = this.nextAtMs - nowMs;
    if (this.timerAtMono !== null) {
      delayMs = Math.min(delayMs, this.timerAtMono - this.monotonic.now());
    }
    if (delayMs <= 0) {
      this.request();
      return;
    }
    const reason = this.state === 'retrying' ? 'retry' : 'refresh';
    this.schedule(reason, delayMs, reason === 'retry' ? this.attempt : undefined);
  }

  emit(type, detail, callback) {
    if (callback) {
      try {
        callback(detail);
      } catch (error) {
        // An application callback must not break the refresh schedule.
        console.error(`token-client: the ${type} callback failed`, error);
      }
    }
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

async function httpError(response) {
  let code = '';
  let serverMessage = '';
  try {
    const body = await response.json();
    code = typeof body?.error?.code === 'string' ? body.error.code : '';
    serverMessage = typeof body?.error?.message === 'string' ? body.error.message : '';
  } catch {
    // Not a JSON error body, such as a proxy's HTML page: the status alone must do.
  }
  const detail = serverMessage ? `: ${serverMessage}` : '';
  return new TokenRequestError('http', `the server returned status ${response.status}${detail}`, {
    status: response.status,
    code,
    serverMessage,
  });
}

function checkTokenResponse(body) {
  if (typeof body?.token !== 'string' || body.token === '') {
    throw new Error('token is missing');
  }
  for (const field of ['expires_at', 'refresh_after', 'server_time']) {
    if (!Number.isSafeInteger(body[field]) || body[field] < 0) {
      throw new Error(`${field} is not a whole number of seconds`);
    }
  }
  if (body.refresh_after > body.expires_at) {
    throw new Error('refresh_after is later than expires_at');
  }
}
