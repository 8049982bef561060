// Browser tests of the demo page and token-client.js: the real `twilio-token serve --demo`
// binary on 127.0.0.1, driven in Debian's headless Chromium. Run with `npm test` here, after
// `cargo build -p twilio-token`.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  CSP_WATCH_SCRIPT,
  launchBrowser,
  screenshot,
  shiftedClockScript,
  startProxy,
  startServer,
  watchPage,
} from './harness.js';

const HOUR_MS = 3_600_000;
// Each test waits at most a few token lifetimes; this stops a hung test well before CI's limit.
const LIMIT = { timeout: 45_000 };

/** Asserts `low <= value <= high`, with a separate assert for each bound. */
function assertBetween(value, low, high, label) {
  assert.ok(value >= low, `${label}: ${value} is below ${low}`);
  assert.ok(value <= high, `${label}: ${value} is above ${high}`);
}

/** Opens the page, signs in as demo by keyboard and waits for the first token. */
async function signIn(page, baseUrl, password) {
  await page.goto(`${baseUrl}/`);
  await page.locator('#signin').waitFor({ state: 'visible' });
  await page.fill('#password', password);
  await page.press('#password', 'Enter');
  await page.locator('#session').waitFor({ state: 'visible' });
}

/** Waits until the history lists `count` entries with this outcome, and returns their texts. */
async function waitForHistory(page, outcome, count, timeout) {
  const items = page.locator(`#history li[data-outcome="${outcome}"]`);
  await page.waitForFunction(
    ([selector, wanted]) => document.querySelectorAll(selector).length >= wanted,
    [`#history li[data-outcome="${outcome}"]`, count],
    { timeout },
  );
  return items.allTextContents();
}

async function countHistory(page, outcome) {
  return page.locator(`#history li[data-outcome="${outcome}"]`).count();
}

/** Presses Tab until each id in `ids` has had focus, in order; returns the ids reached. */
async function tabThrough(page, ids, maxPresses = 25) {
  const reached = [];
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.getSelection()?.removeAllRanges();
  });
  for (let i = 0; i < maxPresses && reached.length < ids.length; i += 1) {
    await page.keyboard.press('Tab');
    const id = await page.evaluate(() => document.activeElement?.id ?? '');
    if (id === ids[reached.length]) {
      reached.push(id);
    }
  }
  return reached;
}

/** Lists visible form controls and buttons without an accessible name. */
function unnamedControls(page) {
  return page.evaluate(() => {
    const visible = (element) => element.getClientRects().length > 0;
    const named = (element) => {
      if (element.getAttribute('aria-label')?.trim()) {
        return true;
      }
      if (element.labels && [...element.labels].some((label) => label.textContent.trim())) {
        return true;
      }
      return element.tagName === 'BUTTON' && element.textContent.trim() !== '';
    };
    return [...document.querySelectorAll('input, button, textarea, select, [tabindex="0"]')]
      .filter(visible)
      .filter((element) => !named(element))
      .map((element) => element.id || element.outerHTML.slice(0, 60));
  });
}

/** Lists visible text whose contrast with its background is below WCAG AA. */
function lowContrastText(page) {
  return page.evaluate(() => {
    const parse = (color) => {
      const match = /rgba?\(([\d.]+), ([\d.]+), ([\d.]+)(?:, ([\d.]+))?\)/.exec(color);
      return match ? { rgb: [match[1], match[2], match[3]].map(Number), alpha: match[4] === undefined ? 1 : Number(match[4]) } : null;
    };
    const luminance = ([r, g, b]) => {
      const channel = (value) => {
        const c = value / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    };
    const background = (element) => {
      for (let node = element; node; node = node.parentElement) {
        const color = parse(getComputedStyle(node).backgroundColor);
        if (color && color.alpha > 0.99) {
          return color.rgb;
        }
      }
      return [255, 255, 255];
    };
    const problems = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const element = node.parentElement;
      if (!node.textContent.trim() || element.getClientRects().length === 0) {
        continue;
      }
      const style = getComputedStyle(element);
      const foreground = parse(style.color).rgb;
      const [light, dark] = [luminance(foreground), luminance(background(element))].sort((a, b) => b - a);
      const ratio = (light + 0.05) / (dark + 0.05);
      const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        problems.push(`${element.tagName}#${element.id} "${node.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
      }
    }
    return problems;
  });
}

describe('demo page', () => {
  test('sign-in, token display, refresh, accessibility, screenshots', LIMIT, async () => {
    const server = await startServer({ ttl: 6, refreshShare: 0.5 });
    const browser = await launchBrowser();
    try {
      const page = browser.context.pages()[0] ?? await browser.context.newPage();
      await page.addInitScript(CSP_WATCH_SCRIPT);
      const problems = watchPage(page);

      const response = await page.goto(`${server.baseUrl}/`);
      assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
      await page.locator('#signin').waitFor({ state: 'visible' });
      assert.equal(await page.textContent('#status'), 'Not signed in.');
      assert.equal(await page.isVisible('#error'), false, 'no error before signing in');

      // Keyboard: Tab reaches the fields and the button in order, with a visible focus ring.
      assert.deepEqual(await tabThrough(page, ['username', 'password', 'signin-button']), ['username', 'password', 'signin-button']);
      const outline = await page.evaluate(() => {
        const style = getComputedStyle(document.activeElement);
        return { style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
      });
      assert.notEqual(outline.style, 'none');
      assert.ok(outline.width >= 2, `outline ${outline.width}px`);
      assert.deepEqual(await unnamedControls(page), []);

      // A wrong password is explained in plain words.
      await page.fill('#password', 'not-the-password');
      await page.press('#password', 'Enter');
      await page.waitForFunction(() => !document.getElementById('error').hidden);
      assert.equal(await page.textContent('#error'), 'The user name or password is not correct.');

      await page.fill('#password', server.password);
      await page.press('#password', 'Enter');
      await page.locator('#session').waitFor({ state: 'visible' });
      assert.equal(await page.textContent('#identity'), 'demo');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'session-heading', 'focus moves to the token');
      assert.equal(await page.isVisible('#error'), false);

      const header = JSON.parse(await page.textContent('#token-header'));
      assert.equal(header.alg, 'HS256');
      assert.equal(header.cty, 'twilio-fpa;v=1');
      const grants = await page.locator('#grants [data-grant]').evaluateAll((rows) => rows.map((row) => row.dataset.grant));
      assert.deepEqual(grants.sort(), ['chat', 'video']);
      const claims = await page.locator('#claims dt').allTextContents();
      for (const claim of ['jti', 'iat', 'exp', 'iss', 'sub']) {
        assert.ok(claims.includes(claim), `claim ${claim} in ${claims}`);
      }
      assert.equal(await page.isVisible('#placeholder-note'), true);
      const raw = await page.inputValue('#raw-token');
      assert.equal(raw.split('.').length, 3);

      // Countdowns: expiry within the 6 s TTL, next refresh within 3 s (half the TTL).
      await page.waitForFunction(() => document.getElementById('expires-in').dataset.ms !== undefined);
      const expiresInMs = Number(await page.getAttribute('#expires-in', 'data-ms'));
      const refreshInMs = Number(await page.getAttribute('#refresh-in', 'data-ms'));
      assertBetween(expiresInMs, 3001, 7000, 'ms until expiry');
      assertBetween(refreshInMs, 1, 3600, 'ms until the refresh');
      assert.match(await page.textContent('#clock-offset'), /agrees with the server/);

      // The refresh happens by itself and brings a new token.
      const texts = await waitForHistory(page, 'token', 2, 6000);
      assert.match(texts[0], /New token for demo, valid for 6 s/);
      await page.waitForFunction((first) => document.getElementById('raw-token').value !== first, raw, { timeout: 2000 });

      assert.deepEqual(await tabThrough(page, ['refresh-button', 'logout-button']), ['refresh-button', 'logout-button']);
      assert.deepEqual(await unnamedControls(page), []);
      assert.deepEqual(await lowContrastText(page), []);
      assert.equal(await page.getAttribute('#status', 'aria-live'), 'polite');
      assert.equal(await page.getAttribute('#error', 'role'), 'alert');

      await screenshot(page, 'demo-desktop.png');
      await page.setViewportSize({ width: 375, height: 740 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone screen`);
      const buttonHeight = await page.locator('#logout-button').evaluate((button) => button.getBoundingClientRect().height);
      assert.ok(buttonHeight >= 44, `touch target ${buttonHeight}px`);
      await screenshot(page, 'demo-phone.png');

      // A reload keeps the session: the page resumes without asking to sign in.
      await page.reload();
      await page.locator('#session').waitFor({ state: 'visible' });
      assert.equal(await page.isVisible('#signin'), false);

      assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('browser clock an hour behind: refresh still on time', LIMIT, async () => {
    const server = await startServer({ ttl: 6, refreshShare: 0.5 });
    const browser = await launchBrowser();
    try {
      const page = browser.context.pages()[0] ?? await browser.context.newPage();
      await page.addInitScript(shiftedClockScript(-HOUR_MS));

      await signIn(page, server.baseUrl, server.password);
      const pageNow = await page.evaluate(() => Date.now());
      assert.ok(Math.abs(pageNow - (Date.now() - HOUR_MS)) < 5000, 'the page clock is an hour behind');

      const offsetMs = Number(await page.getAttribute('#clock-offset', 'data-offset-ms'));
      assert.ok(Math.abs(offsetMs - HOUR_MS) < 1500, `offset ${offsetMs}`);
      assert.match(await page.textContent('#clock-offset'), /^Your clock is 1 h 0 min behind the server’s/);
      await page.waitForFunction(() => document.getElementById('expires-in').dataset.ms !== undefined);
      const expiresInMs = Number(await page.getAttribute('#expires-in', 'data-ms'));
      assertBetween(expiresInMs, 3001, 7000, 'ms until expiry');
      // Uncorrected, the refresh would wait an hour.
      await waitForHistory(page, 'token', 2, 5000);
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('browser clock an hour ahead: no refresh storm', LIMIT, async () => {
    const server = await startServer({ ttl: 6, refreshShare: 0.5 });
    const browser = await launchBrowser();
    try {
      const page = browser.context.pages()[0] ?? await browser.context.newPage();
      await page.addInitScript(shiftedClockScript(HOUR_MS));

      await signIn(page, server.baseUrl, server.password);
      const started = Date.now();
      await page.waitForTimeout(4500);

      const offsetMs = Number(await page.getAttribute('#clock-offset', 'data-offset-ms'));
      assert.ok(Math.abs(offsetMs + HOUR_MS) < 1500, `offset ${offsetMs}`);
      assert.match(await page.textContent('#clock-offset'), /^Your clock is 1 h 0 min ahead of the server’s/);
      // Uncorrected, every token would look expired and be refreshed once a second.
      const tokens = await countHistory(page, 'token');
      const elapsed = Date.now() - started;
      assertBetween(tokens, 2, 3, `tokens in ${elapsed} ms`);
      const expiresInMs = Number(await page.getAttribute('#expires-in', 'data-ms'));
      assertBetween(expiresInMs, 1, 7000, 'ms until expiry');
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('wake after sleep refreshes at once', LIMIT, async () => {
    // Tokens of 20 s, refreshed 10 s after minting; the client's sleep check runs every 5 s.
    const server = await startServer({ ttl: 20, refreshShare: 0.5 });
    const browser = await launchBrowser();
    try {
      const page = browser.context.pages()[0] ?? await browser.context.newPage();
      await page.addInitScript(shiftedClockScript(0));
      await signIn(page, server.baseUrl, server.password);
      const signedInAt = Date.now();

      // The tab comes back after the machine slept for a minute: the page event triggers the
      // refresh, long before the 10 s timer or the next sleep check.
      await page.evaluate(() => {
        window.testClockShiftMs += 60_000;
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await waitForHistory(page, 'token', 2, 2000);
      assert.ok(Date.now() - signedInAt < 4500, 'refreshed before the sleep check ran');

      // Asleep again, and no page event this time: the sleep check notices the late tick.
      await page.evaluate(() => {
        window.testClockShiftMs += 60_000;
      });
      await waitForHistory(page, 'token', 3, 6000);
      assert.ok(Date.now() - signedInAt < 9000, 'refreshed before the 10 s timer');
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('server answers 503, client backs off, then recovers', LIMIT, async () => {
    const server = await startServer({ ttl: 6, refreshShare: 0.5 });
    const proxy = await startProxy(server.port);
    const browser = await launchBrowser();
    try {
      const page = browser.context.pages()[0] ?? await browser.context.newPage();
      await signIn(page, proxy.baseUrl, server.password);
      // The page first tries an existing session (401), then gets a token after signing in.
      assert.deepEqual(proxy.tokenRequests.map((request) => request.status), [401, 200]);

      proxy.failNext(503, 503);
      await page.click('#refresh-button');
      await page.waitForFunction(() => !document.getElementById('error').hidden);
      assert.match(await page.textContent('#error'), /^The token server is temporarily unavailable \(503\)\. Retrying in \d\.\d s\.$/);
      await page.waitForFunction(() => document.getElementById('refresh-in').textContent.endsWith('(retry)'), null, { timeout: 1000 });
      await screenshot(page, 'demo-retrying.png');

      await waitForHistory(page, 'token', 2, 6000);
      const attempts = proxy.tokenRequests.slice(2, 5);
      assert.deepEqual(attempts.map((request) => request.status), [503, 503, 200]);
      const firstGap = attempts[1].atMs - attempts[0].atMs;
      const secondGap = attempts[2].atMs - attempts[1].atMs;
      // Equal jitter from a 1 s base: 0.5 to 1 s, then 1 to 2 s, plus slack for a busy machine.
      assertBetween(firstGap, 450, 1500, 'ms before the first retry');
      assertBetween(secondGap, 950, 2600, 'ms before the second retry');
      assert.ok(secondGap >= firstGap - 200, `backoff grows: ${firstGap} then ${secondGap} ms`);

      const errors = await page.locator('#history li[data-outcome="error"]').allTextContents();
      assert.equal(errors.length, 2);
      assert.equal(await page.isVisible('#error'), false, 'the error clears after recovery');
      assert.doesNotMatch(await page.textContent('#refresh-in'), /retry/);
    } finally {
      await browser.close();
      await proxy.stop();
      await server.stop();
    }
  });

  test('session expiry stops the refresh and asks to sign in', LIMIT, async () => {
    const server = await startServer({ ttl: 4, sessionTtl: 5, refreshShare: 0.5 });
    const proxy = await startProxy(server.port);
    const browser = await launchBrowser();
    try {
      const page = browser.context.pages()[0] ?? await browser.context.newPage();
      await signIn(page, proxy.baseUrl, server.password);

      await waitForHistory(page, 'stop', 1, 9000);
      await page.locator('#signin').waitFor({ state: 'visible' });
      assert.equal(
        await page.textContent('#error'),
        'Your session has ended, so the token can no longer be refreshed. Sign in again.',
      );
      assert.equal(await page.textContent('#status'), 'Not signed in.');
      assert.equal(await page.isVisible('#session'), false);
      assert.equal(await page.evaluate(() => document.activeElement.id), 'username');
      const stops = await page.locator('#history li[data-outcome="stop"]').evaluateAll((items) => items.map((item) => item.lastChild.textContent.trim()));
      assert.deepEqual(stops, [
        'Refresh stopped: Your session has ended, so the token can no longer be refreshed. Sign in again.',
      ]);
      assert.equal(await countHistory(page, 'error'), 0, 'the 401 is told once, as the stop');
      await screenshot(page, 'demo-session-ended.png');
      const statuses = proxy.tokenRequests.map((request) => request.status);
      assert.equal(statuses.at(-1), 401);
      assert.ok(statuses.length >= 4, `the token was refreshed before the session ended: ${statuses}`);
      assert.ok(statuses.slice(1, -1).every((status) => status === 200), `statuses ${statuses}`);

      const count = proxy.tokenRequests.length;
      await page.waitForTimeout(2500);
      assert.equal(proxy.tokenRequests.length, count, 'no token request after the session ended');
    } finally {
      await browser.close();
      await proxy.stop();
      await server.stop();
    }
  });

  test('sign-out stops the refresh and clears the session', LIMIT, async () => {
    const server = await startServer({ ttl: 6, refreshShare: 0.5 });
    const proxy = await startProxy(server.port);
    const browser = await launchBrowser();
    try {
      const page = browser.context.pages()[0] ?? await browser.context.newPage();
      await signIn(page, proxy.baseUrl, server.password);

      await page.focus('#logout-button');
      await page.keyboard.press('Enter');
      await page.locator('#signin').waitFor({ state: 'visible' });
      assert.equal(await page.textContent('#status'), 'Signed out.');
      assert.equal(await countHistory(page, 'signout'), 1);
      assert.equal(await page.isVisible('#error'), false);

      const count = proxy.tokenRequests.length;
      await page.waitForTimeout(3500);
      assert.equal(proxy.tokenRequests.length, count, 'no token request after signing out');
      const after = await page.evaluate(async () => {
        const response = await fetch('/token', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
        return { status: response.status, body: await response.json() };
      });
      assert.equal(after.status, 401);
      assert.equal(after.body.error.code, 'missing_credentials');
    } finally {
      await browser.close();
      await proxy.stop();
      await server.stop();
    }
  });
});
