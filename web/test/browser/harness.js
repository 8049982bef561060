// Test fixtures: the real twilio-token server, Debian's Chromium through playwright-core, and a
// fault-injecting reverse proxy, all on 127.0.0.1.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const testDir = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(testDir, '../../..');
export const artifactDir = path.join(repoRoot, 'target', 'browser-artifacts');

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const START_TIMEOUT_MS = 15_000;

/** Returns the twilio-token binary, failing with the command that builds it. */
export function binaryPath() {
  const binary = process.env.TWILIO_TOKEN_BIN || path.join(repoRoot, 'target', 'debug', 'twilio-token');
  if (!existsSync(binary)) {
    throw new Error(`${binary} does not exist: build it with \`cargo build -p twilio-token\` or set TWILIO_TOKEN_BIN`);
  }
  return binary;
}

/**
 * Starts `twilio-token serve --demo` with a configuration file giving every identity Chat and
 * Video tokens of `ttl` seconds, sessions of `sessionTtl` seconds and a refresh at
 * `refreshShare` of the TTL before expiry. Resolves with the base URL and the demo password
 * from the banner.
 */
export async function startServer({ ttl = 6, sessionTtl = 600, refreshShare = 0.5 } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'twilio-token-browser-'));
  const configPath = path.join(dir, 'config.toml');
  writeFileSync(configPath, `
[server]
listen = "127.0.0.1:0"
data_dir = ${JSON.stringify(path.join(dir, 'data'))}
refresh_before_expiry = ${refreshShare}

[auth.users]
session_ttl_secs = ${sessionTtl}

[[policy.rules]]
identities = ["*"]
ttl = ${ttl}
max_ttl = ${ttl}
[policy.rules.grants.chat]
[policy.rules.grants.video]
`);

  // Without the caller's Twilio variables, so the placeholder profile is used.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TWILIO_')));
  env.RUST_LOG = 'info';
  const child = spawn(binaryPath(), ['serve', '--demo', '--config', configPath], {
    cwd: dir,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');

  const started = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within ${START_TIMEOUT_MS} ms; stderr:\n${stderr}`)), START_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with status ${code}; stderr:\n${stderr}`));
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      const address = /sign in: POST http:\/\/(127\.0\.0\.1:\d+)\/login/.exec(stderr);
      const password = /sign in as demo with password (\S+)/.exec(stderr);
      if (address && password) {
        clearTimeout(timer);
        resolve({ address: address[1], password: password[1] });
      }
    });
  });
  child.removeAllListeners('exit');

  return {
    baseUrl: `http://${started.address}`,
    port: Number(started.address.split(':')[1]),
    password: started.password,
    logs: () => stderr,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Launches Chromium with a fresh profile and returns its one browser context. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} does not exist: install Debian's chromium package (apt-get install chromium)`);
  }
  const profile = mkdtempSync(path.join(tmpdir(), 'twilio-token-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 900 },
    timeout: 30_000,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a reverse proxy in front of the server. It can reply to the next token requests with
 * an error instead of forwarding them, and records every `POST /token` with its time and
 * status.
 */
export async function startProxy(targetPort) {
  const tokenRequests = [];
  let failures = [];
  const server = http.createServer((request, response) => {
    const isToken = request.method === 'POST' && request.url === '/token';
    if (isToken && failures.length > 0) {
      const status = failures.shift();
      tokenRequests.push({ atMs: Date.now(), status });
      request.resume();
      response.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      response.end(JSON.stringify({ error: { code: 'unavailable', message: 'injected by the test proxy' } }));
      return;
    }
    const upstream = http.request({
      host: '127.0.0.1',
      port: targetPort,
      method: request.method,
      path: request.url,
      headers: request.headers,
    }, (upstreamResponse) => {
      if (isToken) {
        tokenRequests.push({ atMs: Date.now(), status: upstreamResponse.statusCode });
      }
      response.writeHead(upstreamResponse.statusCode, upstreamResponse.headers);
      upstreamResponse.pipe(response);
    });
    upstream.on('error', (error) => {
      response.writeHead(502, { 'Content-Type': 'text/plain' });
      response.end(`proxy error: ${error.message}`);
    });
    request.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    tokenRequests,
    /** Replies to the next token requests with these statuses, one each. */
    failNext(...statuses) {
      failures = failures.concat(statuses);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Saves a screenshot under target/browser-artifacts/. */
export async function screenshot(page, name) {
  mkdirSync(artifactDir, { recursive: true });
  const file = path.join(artifactDir, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Records Content-Security-Policy violations and console errors of a page. */
export function watchPage(page) {
  const problems = [];
  page.on('console', (message) => {
    // Chromium logs every non-2xx fetch, and the tests expect 401 and 503 responses.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return problems;
}

/** Script for addInitScript: collects CSP violations into window.cspViolations. */
export const CSP_WATCH_SCRIPT = `
  window.cspViolations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
  });
`;

/**
 * Script for addInitScript: moves the page's clock by `offsetMs` without touching timers. A
 * test can move it further with `window.testClockShiftMs += ms`, which looks to the page like a
 * machine that slept: the wall clock jumps, and pending timers do not fire early.
 */
export function shiftedClockScript(offsetMs) {
  return `(() => {
    window.testClockShiftMs = ${Number(offsetMs)};
    const RealDate = Date;
    class ShiftedDate extends RealDate {
      constructor(...args) {
        if (args.length === 0) {
          super(RealDate.now() + window.testClockShiftMs);
        } else {
          super(...args);
        }
      }
      static now() {
        return RealDate.now() + window.testClockShiftMs;
      }
    }
    globalThis.Date = ShiftedDate;
  })();`;
}
