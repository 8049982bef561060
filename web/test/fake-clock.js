// A fake clock and timers for driving TokenClient in tests without waiting.

export class FakeClock {
  constructor(startMs = 1_700_000_000_000) {
    this.nowMs = startMs;
    this.nextId = 1;
    this.pending = new Map();
  }

  now() {
    return this.nowMs;
  }

  setTimeout(callback, ms) {
    const id = this.nextId++;
    this.pending.set(id, { at: this.nowMs + Math.max(0, ms), callback, everyMs: null });
    return id;
  }

  clearTimeout(id) {
    this.pending.delete(id);
  }

  setInterval(callback, ms) {
    const id = this.nextId++;
    this.pending.set(id, { at: this.nowMs + ms, callback, everyMs: ms });
    return id;
  }

  clearInterval(id) {
    this.pending.delete(id);
  }

  /** The number of timeouts and intervals still set. */
  get timerCount() {
    return this.pending.size;
  }

  /** Returns the due time of the earliest one-shot timer, or null. */
  nextTimeoutAt() {
    let earliest = null;
    for (const timer of this.pending.values()) {
      if (timer.everyMs === null && (earliest === null || timer.at < earliest)) {
        earliest = timer.at;
      }
    }
    return earliest;
  }

  /** Moves time forward by `ms`, firing due timers in order and settling promises between. */
  async advance(ms) {
    const end = this.nowMs + ms;
    for (;;) {
      await settle();
      const due = this.earliestDue(end);
      if (!due) {
        break;
      }
      const [id, timer] = due;
      this.nowMs = timer.at;
      if (timer.everyMs === null) {
        this.pending.delete(id);
      } else {
        timer.at += timer.everyMs;
      }
      timer.callback();
    }
    this.nowMs = end;
    await settle();
  }

  /** Jumps the wall clock without firing timers, as a machine that slept. */
  jump(ms) {
    this.nowMs += ms;
  }

  earliestDue(end) {
    let found = null;
    for (const entry of this.pending) {
      if (entry[1].at <= end && (found === null || entry[1].at < found[1].at)) {
        found = entry;
      }
    }
    return found;
  }
}

/** Lets pending promise callbacks run. */
export async function settle() {
  for (let i = 0; i < 20; i += 1) {
    await Promise.resolve();
  }
}

/** A fetch that returns queued responses and records each request. */
export class FakeFetch {
  constructor(clock) {
    this.clock = clock;
    this.queue = [];
    this.requests = [];
    this.fetch = (url, init) => this.handle(url, init);
  }

  /** Queues a response: a status and body, or an Error for a network failure. */
  push(status, body, headers = {}) {
    this.queue.push({ status, body, headers });
  }

  pushNetworkError(message = 'Failed to fetch') {
    this.queue.push(new TypeError(message));
  }

  async handle(url, init) {
    this.requests.push({ url, init, atMs: this.clock.now() });
    const next = this.queue.shift();
    if (!next) {
      throw new Error('FakeFetch: no response queued');
    }
    if (next instanceof Error) {
      throw next;
    }
    const headers = new Map(Object.entries(next.headers).map(([k, v]) => [k.toLowerCase(), v]));
    return {
      status: next.status,
      ok: next.status >= 200 && next.status < 300,
      headers: { get: (name) => headers.get(name.toLowerCase()) ?? null },
      json: async () => {
        if (typeof next.body === 'string') {
          return JSON.parse(next.body);
        }
        return next.body;
      },
    };
  }
}

/** Builds a token response as the server sends it, minted at `serverTimeSec`. */
export function tokenBody(serverTimeSec, { ttl = 3600, refreshShare = 0.2, token = 'h.p.s' } = {}) {
  const expiresAt = serverTimeSec + ttl;
  return {
    identity: 'alice',
    token,
    ttl,
    expires_at: expiresAt,
    refresh_after: expiresAt - Math.max(1, Math.round(ttl * refreshShare)),
    server_time: serverTimeSec,
  };
}
