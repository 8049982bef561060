// Unit tests of token-client.js with a fake clock: node --test web/test/

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  TokenClient,
  backoffDelayMs,
  classifyResponse,
  clockOffsetMs,
  decodeUnverified,
  parseRetryAfterMs,
  planRefresh,
  shouldRefreshOnWake,
} from '../token-client.js';
import { FakeClock, FakeFetch, tokenBody } from './fake-clock.js';

/** Asserts `low <= value <= high`, with a separate assert for each bound. */
function assertBetween(value, low, high, label) {
  assert.ok(value >= low, `${label}: ${value} is below ${low}`);
  assert.ok(value <= high, `${label}: ${value} is above ${high}`);
}

describe('clockOffsetMs', () => {
  test('server ahead by an hour', () => {
    const sent = 1_000_000_000_000;
    const received = sent + 200;
    const serverTimeSec = Math.floor((sent + 100) / 1000) + 3600;

    const offset = clockOffsetMs(serverTimeSec, sent, received);

    // Truncated seconds plus 500 ms against the middle of the round trip.
    assert.equal(offset, serverTimeSec * 1000 + 500 - (sent + 100));
    assert.ok(Math.abs(offset - 3_600_000) <= 600, `offset ${offset}`);
  });

  test('equal clocks give an offset within half a second', () => {
    for (const localMs of [1_000_000_000_000, 1_000_000_000_400, 1_000_000_000_999]) {
      const offset = clockOffsetMs(Math.floor(localMs / 1000), localMs, localMs);
      assert.ok(Math.abs(offset) <= 500, `offset ${offset} at ${localMs}`);
    }
  });
});

describe('planRefresh', () => {
  const server = { refreshAfterSec: 1_000_048, expiresAtSec: 1_000_060 };

  test('without jitter or offset, refreshes at refresh_after', () => {
    const plan = planRefresh({ ...server, offsetMs: 0, nowMs: 1_000_000_000, random: () => 0 });

    assert.equal(plan.refreshAtMs, 1_000_048_000);
    assert.equal(plan.delayMs, 48_000);
    assert.equal(plan.expiresAtMs, 1_000_060_000);
    assert.equal(plan.jitterMs, 0);
  });

  test('jitter moves the refresh earlier, never later', () => {
    for (const value of [0, 0.25, 0.5, 0.999999]) {
      const plan = planRefresh({ ...server, offsetMs: 0, nowMs: 1_000_000_000, random: () => value });
      assert.ok(plan.refreshAtMs <= 1_000_048_000, `random ${value}`);
      // 10% of the 12-second window at most.
      assert.ok(plan.refreshAtMs >= 1_000_048_000 - 1200, `random ${value}`);
    }
  });

  test('local clock behind the server is corrected', () => {
    // The server is an hour ahead: its refresh_after is an hour earlier by the local clock.
    const offsetMs = 3_600_000;
    const nowMs = 1_000_000_000 - offsetMs;

    const plan = planRefresh({ ...server, offsetMs, nowMs, random: () => 0 });

    assert.equal(plan.delayMs, 48_000);
    assert.equal(plan.expiresAtMs, 1_000_060_000 - offsetMs);
  });

  test('local clock ahead of the server is corrected', () => {
    const offsetMs = -7_200_000;
    const nowMs = 1_000_000_000 + 7_200_000;

    const plan = planRefresh({ ...server, offsetMs, nowMs, random: () => 0 });

    assert.equal(plan.delayMs, 48_000);
  });

  test('refresh_after already past waits the minimum delay', () => {
    const plan = planRefresh({
      refreshAfterSec: 1_000_000,
      expiresAtSec: 1_000_001,
      offsetMs: 0,
      nowMs: 1_000_000_500,
      random: () => 0,
      minRefreshDelayMs: 1000,
    });

    assert.equal(plan.delayMs, 1000);
    assert.equal(plan.refreshAtMs, 1_000_001_500);
  });
});

describe('backoffDelayMs', () => {
  test('grows exponentially within the upper half of each step', () => {
    const low = [0, 1, 2, 3].map((attempt) => backoffDelayMs(attempt, { random: () => 0 }));
    const high = [0, 1, 2, 3].map((attempt) => backoffDelayMs(attempt, { random: () => 1 }));

    assert.deepEqual(low, [500, 1000, 2000, 4000]);
    assert.deepEqual(high, [1000, 2000, 4000, 8000]);
  });

  test('is capped at maxMs', () => {
    assert.equal(backoffDelayMs(5, { random: () => 1 }), 30_000);
    assert.equal(backoffDelayMs(5, { random: () => 0 }), 15_000);
    assert.equal(backoffDelayMs(5000, { random: () => 1 }), 30_000);
    assert.equal(backoffDelayMs(3, { maxMs: 3000, random: () => 1 }), 3000);
  });

  test('Retry-After is a lower bound, even above maxMs', () => {
    assert.equal(backoffDelayMs(0, { random: () => 0, retryAfterMs: 7000 }), 7000);
    assert.equal(backoffDelayMs(0, { random: () => 0, retryAfterMs: 120_000 }), 120_000);
    assert.equal(backoffDelayMs(9, { random: () => 1, retryAfterMs: 0 }), 30_000);
  });
});

describe('shouldRefreshOnWake', () => {
  test('only once the planned time has passed', () => {
    assert.equal(shouldRefreshOnWake({ nowMs: 999, refreshAtMs: 1000 }), false);
    assert.equal(shouldRefreshOnWake({ nowMs: 1000, refreshAtMs: 1000 }), true);
    assert.equal(shouldRefreshOnWake({ nowMs: 5000, refreshAtMs: 1000 }), true);
    assert.equal(shouldRefreshOnWake({ nowMs: 5000, refreshAtMs: null }), true);
  });
});

describe('classifyResponse', () => {
  test('statuses', () => {
    const cases = [
      [200, 'ok'], [401, 'stop'], [403, 'stop'], [500, 'retry'], [502, 'retry'], [503, 'retry'],
      [504, 'retry'], [408, 'retry'], [429, 'retry'], [400, 'fail'], [404, 'fail'], [413, 'fail'],
      [415, 'fail'],
    ];
    for (const [status, expected] of cases) {
      assert.equal(classifyResponse(status), expected, `status ${status}`);
    }
  });
});

describe('parseRetryAfterMs', () => {
  test('seconds only', () => {
    assert.equal(parseRetryAfterMs('3'), 3000);
    assert.equal(parseRetryAfterMs(' 2 '), 2000);
    assert.equal(parseRetryAfterMs(null), 0);
    assert.equal(parseRetryAfterMs('soon'), 0);
    assert.equal(parseRetryAfterMs('-1'), 0);
  });
});

describe('decodeUnverified', () => {
  test('reads header and payload', () => {
    const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const jwt = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ sub: 'AC1', grants: { identity: 'zoë' } })}.sig`;

    const decoded = decodeUnverified(jwt);

    assert.deepEqual(decoded.header, { alg: 'HS256', typ: 'JWT' });
    assert.equal(decoded.payload.grants.identity, 'zoë');
  });

  test('wrong number of parts', () => {
    assert.throws(() => decodeUnverified('a.b'), {
      name: 'TokenFormatError',
      message: 'a JWT has 3 parts separated by dots, this one has 2',
    });
  });

  test('payload that is not JSON', () => {
    assert.throws(() => decodeUnverified('e30.bm90IGpzb24.sig'), {
      name: 'TokenFormatError',
      message: /^the JWT payload is not base64url-encoded JSON: /,
    });
  });
});

/** Builds a client on a fake clock whose random source always returns `randomValue`. */
function harness({ randomValue = 0, ...options } = {}) {
  const clock = new FakeClock();
  const fetcher = new FakeFetch(clock);
  const events = [];
  const client = new TokenClient({
    clock,
    timers: clock,
    fetch: fetcher.fetch,
    random: () => randomValue,
    window: null,
    ...options,
  });
  for (const type of ['token', 'schedule', 'error', 'stop']) {
    client.addEventListener(type, (event) => events.push({ type, detail: event.detail, atMs: clock.now() }));
  }
  const serverNow = (offsetMs = 0) => Math.floor((clock.now() + offsetMs) / 1000);
  return { clock, fetcher, client, events, serverNow };
}

describe('TokenClient', () => {
  test('fetches, then refreshes at refresh_after', async () => {
    const { clock, fetcher, client, events, serverNow } = harness();
    fetcher.push(200, tokenBody(serverNow(), { ttl: 60 }));

    const first = await client.start();

    assert.equal(first.token, 'h.p.s');
    assert.equal(fetcher.requests.length, 1);
    const { url, init } = fetcher.requests[0];
    assert.equal(url, '/token');
    assert.equal(init.method, 'POST');
    assert.equal(init.credentials, 'same-origin');
    assert.equal(init.headers['Content-Type'], 'application/json');
    assert.equal(init.body, '{}');
    assert.equal(init.headers.Authorization, undefined);
    assert.equal(client.state, 'scheduled');

    // refresh_after is 48 s after minting; the offset estimate may move it by under a second.
    const delay = client.nextAtMs - first.receivedAtMs;
    assertBetween(delay, 47_001, 48_500, 'refresh delay');
    await clock.advance(47_000);
    assert.equal(fetcher.requests.length, 1);

    fetcher.push(200, tokenBody(serverNow(1500), { ttl: 60, token: 'second' }));
    await clock.advance(1500);
    assert.equal(fetcher.requests.length, 2);
    assert.equal(client.current.token, 'second');
    assert.deepEqual(events.filter((e) => e.type === 'token').map((e) => e.detail.token), ['h.p.s', 'second']);
  });

  test('server clock ahead by an hour: refreshes on the server schedule', async () => {
    const { clock, fetcher, client, serverNow } = harness();
    const hour = 3_600_000;
    fetcher.push(200, tokenBody(serverNow(hour), { ttl: 60 }));

    const first = await client.start();

    assert.ok(Math.abs(first.offsetMs - hour) <= 1000, `offset ${first.offsetMs}`);
    const untilExpiry = client.msUntilExpiry();
    assertBetween(untilExpiry, 59_001, 61_000, 'ms until expiry');
    await clock.advance(46_000);
    assert.equal(fetcher.requests.length, 1, 'no refresh before refresh_after');
    fetcher.push(200, tokenBody(serverNow(hour)));
    await clock.advance(3000);
    assert.equal(fetcher.requests.length, 2, 'refreshed near refresh_after');
  });

  test('server clock behind by two hours: no refresh loop', async () => {
    const { clock, fetcher, client, serverNow } = harness();
    const offset = -7_200_000;
    fetcher.push(200, tokenBody(serverNow(offset), { ttl: 60 }));

    await client.start();
    await clock.advance(40_000);

    assert.equal(fetcher.requests.length, 1);
    assert.ok(client.msUntilExpiry() > 15_000);
  });

  test('jitter starts the refresh early by at most its share', async () => {
    const { fetcher, client, serverNow } = harness({ randomValue: 0.999 });
    fetcher.push(200, tokenBody(serverNow(), { ttl: 100 }));

    const first = await client.start();

    // refresh_after 80 s, window 20 s, 10% jitter: 78 to 80 s, plus the offset estimate.
    const delay = first.refreshAtMs - first.receivedAtMs;
    assertBetween(delay, 77_000, 79_499, 'refresh delay');
  });

  test('503 then success: backoff grows, then resets', async () => {
    const { clock, fetcher, client, events, serverNow } = harness({ randomValue: 0 });
    fetcher.push(503, { error: { code: 'unavailable', message: 'the user database is unavailable' } });
    fetcher.push(503, '{"error": {"code": "unavailable", "message": "later"}}');
    fetcher.push(500, 'not json at all');

    const first = await client.start();
    assert.equal(first, null);
    assert.equal(client.state, 'retrying');
    await clock.advance(500);
    assert.equal(fetcher.requests.length, 2);
    await clock.advance(999);
    assert.equal(fetcher.requests.length, 2, 'second retry waits 1000 ms');
    fetcher.push(200, tokenBody(serverNow(1), { ttl: 60 }));
    await clock.advance(1);
    assert.equal(fetcher.requests.length, 3);
    await clock.advance(2000);
    assert.equal(fetcher.requests.length, 4);

    const errors = events.filter((e) => e.type === 'error').map((e) => e.detail);
    assert.deepEqual(errors.map((e) => [e.attempt, e.retryInMs, e.willRetry, e.error.status]), [
      [0, 500, true, 503],
      [1, 1000, true, 503],
      [2, 2000, true, 500],
    ]);
    assert.equal(errors[0].error.code, 'unavailable');
    assert.equal(errors[0].error.message, 'the server returned status 503: the user database is unavailable');
    assert.equal(errors[2].error.message, 'the server returned status 500');
    assert.equal(client.current.ttl, 60);
    assert.equal(client.state, 'scheduled');
    assert.equal(client.attempt, 0, 'success resets the backoff');
  });

  test('network error retries, and Retry-After is honoured', async () => {
    const { clock, fetcher, client, events, serverNow } = harness({ randomValue: 0 });
    fetcher.pushNetworkError();
    fetcher.push(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'Retry-After': '5' });

    await client.start();
    await clock.advance(500);
    assert.equal(fetcher.requests.length, 2);
    fetcher.push(200, tokenBody(serverNow(5000)));
    await clock.advance(4999);
    assert.equal(fetcher.requests.length, 2, 'waits for Retry-After');
    await clock.advance(1);
    assert.equal(fetcher.requests.length, 3);

    const errors = events.filter((e) => e.type === 'error').map((e) => e.detail.error);
    assert.equal(errors[0].kind, 'network');
    assert.equal(errors[0].message, 'the token request failed: Failed to fetch');
    assert.equal(errors[1].status, 429);
  });

  test('401 stops the client and reports it', async () => {
    const { clock, fetcher, client, events, serverNow } = harness();
    fetcher.push(200, tokenBody(serverNow(), { ttl: 10 }));
    await client.start();
    fetcher.push(401, { error: { code: 'invalid_session', message: 'your session has expired or is not valid: sign in again' } });

    await clock.advance(10_000);

    const stops = events.filter((e) => e.type === 'stop').map((e) => e.detail);
    assert.equal(stops.length, 1);
    assert.equal(stops[0].reason, 'unauthorized');
    assert.equal(stops[0].error.code, 'invalid_session');
    assert.equal(client.state, 'stopped');
    assert.equal(clock.timerCount, 0, 'no timer or wake check is left');
    await clock.advance(3_600_000);
    assert.equal(fetcher.requests.length, 2);
  });

  test('403 and 400 stop with their reasons', async () => {
    for (const [status, reason] of [[403, 'forbidden'], [400, 'rejected'], [415, 'rejected']]) {
      const { fetcher, client, events } = harness();
      fetcher.push(status, { error: { code: 'x', message: 'no' } });

      await client.start();

      const stop = events.find((e) => e.type === 'stop');
      assert.equal(stop.detail.reason, reason, `status ${status}`);
      assert.equal(stop.detail.error.status, status);
      const error = events.find((e) => e.type === 'error');
      assert.equal(error.detail.willRetry, false);
      assert.equal(error.detail.retryInMs, null);
    }
  });

  test('invalid token response is retried', async () => {
    const { clock, fetcher, client, events, serverNow } = harness();
    fetcher.push(200, { token: 'a.b.c', expires_at: 'soon', refresh_after: 1, server_time: 1 });

    await client.start();

    const error = events.find((e) => e.type === 'error').detail;
    assert.equal(error.error.kind, 'invalid_response');
    assert.equal(error.error.message, 'the token response is not valid: expires_at is not a whole number of seconds');
    fetcher.push(200, tokenBody(serverNow(1000)));
    await clock.advance(1000);
    assert.equal(client.current.token, 'h.p.s');
  });

  test('sleep past the refresh time refreshes on wake', async () => {
    const { clock, fetcher, client, events, serverNow } = harness();
    fetcher.push(200, tokenBody(serverNow(), { ttl: 60 }));
    await client.start();

    // Timers do not run while the machine sleeps, and their remaining time does not shrink.
    clock.jump(10 * 60_000);
    for (const timer of clock.pending.values()) {
      timer.at += 10 * 60_000;
    }
    fetcher.push(200, tokenBody(serverNow(), { ttl: 60, token: 'after-sleep' }));
    client.wake('visibilitychange');
    await clock.advance(0);

    assert.equal(fetcher.requests.length, 2);
    assert.equal(client.current.token, 'after-sleep');
    assert.ok(events.some((e) => e.type === 'token' && e.detail.token === 'after-sleep'));
  });

  test('timer drift detects sleep without any page event', async () => {
    const { clock, fetcher, client, serverNow } = harness();
    fetcher.push(200, tokenBody(serverNow(), { ttl: 60 }));
    await client.start();

    clock.jump(5 * 60_000);
    for (const timer of clock.pending.values()) {
      timer.at += 5 * 60_000;
    }
    fetcher.push(200, tokenBody(serverNow(), { ttl: 60, token: 'after-drift' }));
    // The next sleep check runs 5 s later by its own timer, 5 minutes late by the wall clock.
    await clock.advance(5000);

    assert.equal(fetcher.requests.length, 2);
    assert.equal(client.current.token, 'after-drift');
  });

  test('wake before the refresh time only reschedules', async () => {
    const { clock, fetcher, client, serverNow } = harness();
    fetcher.push(200, tokenBody(serverNow(), { ttl: 60 }));
    await client.start();
    const plannedAt = client.nextAtMs;

    await clock.advance(10_000);
    client.wake('pageshow');
    await clock.advance(0);

    assert.equal(fetcher.requests.length, 1);
    assert.equal(client.nextAtMs, plannedAt);
  });

  test('online during backoff retries at once', async () => {
    const { clock, fetcher, client, serverNow } = harness({ randomValue: 1 });
    fetcher.pushNetworkError();
    await client.start();
    assert.equal(client.state, 'retrying');

    fetcher.push(200, tokenBody(serverNow()));
    client.wake('online');
    await clock.advance(0);

    assert.equal(fetcher.requests.length, 2);
    assert.equal(client.state, 'scheduled');
  });

  test('window events drive wake-ups', async () => {
    const target = new EventTarget();
    target.document = new EventTarget();
    target.document.visibilityState = 'visible';
    const { clock, fetcher, client, serverNow } = harness({ window: target });
    fetcher.push(200, tokenBody(serverNow(), { ttl: 60 }));
    await client.start();
    clock.jump(120_000);
    for (const timer of clock.pending.values()) {
      timer.at += 120_000;
    }

    target.document.visibilityState = 'hidden';
    target.document.dispatchEvent(new Event('visibilitychange'));
    await clock.advance(0);
    assert.equal(fetcher.requests.length, 1, 'hiding the tab does not refresh');

    fetcher.push(200, tokenBody(serverNow()));
    target.document.visibilityState = 'visible';
    target.document.dispatchEvent(new Event('visibilitychange'));
    await clock.advance(0);
    assert.equal(fetcher.requests.length, 2);

    client.stop();
    clock.jump(3_600_000);
    target.dispatchEvent(new Event('pageshow'));
    await clock.advance(0);
    assert.equal(fetcher.requests.length, 2, 'a stopped client ignores wake-ups');
  });

  test('bearer credential from the callback', async () => {
    let calls = 0;
    const { fetcher, client, serverNow } = harness({
      credentials: 'omit',
      body: { grants: ['chat'] },
      getBearer: async () => {
        calls += 1;
        return 'ttk_example';
      },
    });
    fetcher.push(200, tokenBody(serverNow()));

    await client.start();

    const { init } = fetcher.requests[0];
    assert.equal(calls, 1);
    assert.equal(init.headers.Authorization, 'Bearer ttk_example');
    assert.equal(init.credentials, 'omit');
    assert.equal(init.body, '{"grants":["chat"]}');
  });

  test('getBearer failure is retried', async () => {
    let calls = 0;
    const { clock, fetcher, client, events, serverNow } = harness({
      randomValue: 0,
      getBearer: () => {
        calls += 1;
        if (calls === 1) {
          throw new Error('no key yet');
        }
        return 'ttk_example';
      },
    });

    await client.start();
    fetcher.push(200, tokenBody(serverNow(500)));
    await clock.advance(500);

    const error = events.find((e) => e.type === 'error').detail.error;
    assert.equal(error.kind, 'credentials');
    assert.equal(error.message, 'getBearer failed: no key yet');
    assert.equal(fetcher.requests.length, 1, 'no request without the credential');
    assert.equal(client.current.token, 'h.p.s');
  });

  test('start again forgets the old token', async () => {
    const { fetcher, client, serverNow } = harness();
    fetcher.push(200, tokenBody(serverNow()));
    await client.start();
    client.stop();
    fetcher.push(401, { error: { code: 'missing_credentials', message: 'sign in' } });

    const second = await client.start();

    assert.equal(second, null);
    assert.equal(client.current, null);
  });

  test('a throwing callback does not break the schedule', async () => {
    const { clock, fetcher, client, serverNow } = harness({
      onToken: () => {
        throw new Error('app bug');
      },
    });
    const originalError = console.error;
    const logged = [];
    console.error = (...args) => logged.push(args);
    try {
      fetcher.push(200, tokenBody(serverNow(), { ttl: 10 }));
      await client.start();
      fetcher.push(200, tokenBody(serverNow(8000), { ttl: 10 }));
      await clock.advance(8500);
    } finally {
      console.error = originalError;
    }

    assert.equal(fetcher.requests.length, 2);
    assert.equal(logged.length, 2);
    assert.equal(logged[0][0], 'token-client: the token callback failed');
  });

  test('a one-second token refreshes at most once a second', async () => {
    const { clock, fetcher, client, serverNow } = harness();
    for (let i = 0; i < 20; i += 1) {
      fetcher.push(200, tokenBody(serverNow(i * 1000), { ttl: 1 }));
    }

    await client.start();
    await clock.advance(5000);

    assert.ok(fetcher.requests.length <= 6, `${fetcher.requests.length} requests in 5 s`);
    const gaps = fetcher.requests.slice(1).map((r, i) => r.atMs - fetcher.requests[i].atMs);
    assert.ok(gaps.every((gap) => gap >= 1000), `gaps ${gaps}`);
  });

  test('stop ignores a response still in flight', async () => {
    const { clock, client, events } = harness({
      fetch: () => new Promise((resolve) => setTimeout(() => resolve({ status: 200 }), 5)),
    });

    const started = client.start();
    client.stop();
    await started;
    await clock.advance(0);

    assert.equal(client.current, null);
    assert.equal(client.state, 'stopped');
    assert.deepEqual(events.map((e) => [e.type, e.detail.reason]), [['stop', 'stopped']]);
  });

  test('stop while the body is read ignores it', async () => {
    for (const status of [200, 503]) {
      let releaseBody;
      const bodyRead = new Promise((resolve) => {
        releaseBody = resolve;
      });
      const { clock, client, events, serverNow } = harness({
        fetch: async () => ({
          status,
          headers: { get: () => null },
          json: async () => {
            await bodyRead;
            return status === 200 ? tokenBody(serverNow()) : { error: { code: 'unavailable', message: 'later' } };
          },
        }),
      });

      const started = client.start();
      await clock.advance(0);
      client.stop();
      releaseBody();
      await started;
      await clock.advance(60_000);

      assert.equal(client.current, null, `status ${status}`);
      assert.equal(client.state, 'stopped', `status ${status}`);
      assert.equal(clock.timerCount, 0, `status ${status}`);
      assert.deepEqual(events.map((e) => e.type), ['stop'], `status ${status}`);
    }
  });

  test('start after stop sends a new request', async () => {
    // The first response is held until after the second run has its token, as on a slow
    // network when a user signs out and another signs in.
    let releaseFirst;
    const firstResponse = new Promise((resolve) => {
      releaseFirst = resolve;
    });
    const { clock, fetcher, client, events, serverNow } = harness();
    fetcher.push(200, tokenBody(serverNow(), { token: 'new' }));
    let calls = 0;
    client.fetch = (url, init) => {
      calls += 1;
      return calls === 1 ? firstResponse : fetcher.fetch(url, init);
    };

    const first = client.refreshNow();
    await clock.advance(0);
    client.stop();
    const second = await client.start();
    releaseFirst({
      status: 200,
      headers: { get: () => null },
      json: async () => tokenBody(serverNow(), { token: 'old' }),
    });
    await first;
    await clock.advance(0);

    assert.equal(calls, 2);
    assert.equal(second.token, 'new');
    assert.equal(client.current.token, 'new');
    const tokens = events.filter((e) => e.type === 'token').map((e) => e.detail.token);
    assert.deepEqual(tokens, ['new']);
  });

  test('stop while getBearer is pending sends nothing', async () => {
    let releaseBearer;
    const bearer = new Promise((resolve) => {
      releaseBearer = resolve;
    });
    const { clock, fetcher, client } = harness({ getBearer: () => bearer });

    const started = client.start();
    client.stop();
    releaseBearer('id-token');
    await started;
    await clock.advance(60_000);

    assert.equal(fetcher.requests.length, 0);
    assert.equal(client.state, 'stopped');
  });

  test('wall clock set back does not delay the refresh', async () => {
    // The monotonic clock goes on while the wall clock is set back an hour.
    let setBackMs = 0;
    let wall = null;
    const monotonic = { now: () => wall.now() + setBackMs };
    const { clock, fetcher, client, events, serverNow } = harness({ monotonic });
    wall = clock;
    fetcher.push(200, tokenBody(serverNow(), { ttl: 600 }));
    await client.start();
    const remainingMs = client.nextAtMs - clock.now();

    await clock.advance(100_000);
    clock.jump(-3_600_000);
    setBackMs += 3_600_000;
    client.wake('visibilitychange');

    const rescheduled = events.filter((e) => e.type === 'schedule').at(-1);
    assertBetween(rescheduled.detail.delayMs, remainingMs - 100_000 - 1, remainingMs - 100_000, 'delay after the clock change');
  });

  test('refreshNow joins the request in flight', async () => {
    const { fetcher, client, serverNow } = harness();
    fetcher.push(200, tokenBody(serverNow()));
    fetcher.push(200, tokenBody(serverNow()));

    await client.start();
    await Promise.all([client.refreshNow(), client.refreshNow()]);

    assert.equal(fetcher.requests.length, 2);
  });
});
