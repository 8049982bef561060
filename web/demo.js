// The demo page of `twilio-token serve --demo`: sign-in, a token kept fresh by TokenClient,
// its decoded contents, countdowns and the refresh history.

import { TokenClient, decodeUnverified } from '/token-client.js';

const PLACEHOLDER_ACCOUNT_SID = 'AC00000000000000000000000000000000';
const HISTORY_LIMIT = 50;
const GRANT_NAMES = {
  chat: 'Chat (Conversations)',
  video: 'Video',
  voice: 'Voice',
  data_sync: 'Sync',
  task_router: 'TaskRouter',
  player: 'Live playback',
};
const TIME_CLAIMS = new Set(['iat', 'exp', 'nbf']);

const $ = (id) => document.getElementById(id);

let client = null;
let sessionExpiresAtMs = null;

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', signIn);
  $('refresh-button').addEventListener('click', () => client?.refreshNow());
  $('logout-button').addEventListener('click', signOut);
  setInterval(updateCountdowns, 250);
  // A session cookie from an earlier visit may still be valid: try it before asking to sign in.
  startTokens({ resuming: true });
});

async function signIn(event) {
  event.preventDefault();
  clearError();
  const button = $('signin-button');
  button.disabled = true;
  setStatus('Signing in…');
  try {
    const response = await fetch('/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ username: $('username').value, password: $('password').value }),
    });
    const body = await readJson(response);
    if (!response.ok) {
      showError(loginErrorText(response, body));
      setStatus('Not signed in.');
      $('password').focus();
      return;
    }
    $('password').value = '';
    sessionExpiresAtMs = body.session_expires_at * 1000;
    addHistory('signin', `Signed in as ${body.identity}.`);
    startTokens({ resuming: false });
  } catch (error) {
    showError(`Could not reach the server to sign in (${error.message}). Check that it is running and try again.`);
    setStatus('Not signed in.');
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  clearError();
  client?.stop();
  client = null;
  try {
    const response = await fetch('/logout', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: '{}',
    });
    if (!response.ok) {
      const body = await readJson(response);
      showError(`Signing out failed: ${serverMessage(body) || `the server returned status ${response.status}`}.`);
    }
  } catch (error) {
    showError(`Could not reach the server to sign out (${error.message}). The session may still be active.`);
  }
  sessionExpiresAtMs = null;
  addHistory('signout', 'Signed out. Token refresh stopped.');
  showSignIn('Signed out.');
}

function startTokens({ resuming }) {
  client?.stop();
  const tokens = new TokenClient({ url: '/token', credentials: 'same-origin' });
  client = tokens;
  tokens.addEventListener('token', (event) => {
    if (client === tokens) {
      showToken(event.detail);
    }
  });
  tokens.addEventListener('error', (event) => {
    if (client === tokens) {
      showRequestError(event.detail);
    }
  });
  tokens.addEventListener('stop', (event) => {
    if (client === tokens) {
      stopped(event.detail, { quiet: resuming && !tokens.current, hadToken: tokens.current !== null });
    }
  });
  setStatus(resuming ? 'Checking for an existing session…' : 'Getting a token…');
  tokens.start();
}

function showToken(info) {
  clearError();
  $('signin').hidden = true;
  const wasHidden = $('session').hidden;
  $('session').hidden = false;
  $('identity').textContent = info.identity;
  $('raw-token').value = info.token;
  $('clock-offset').textContent = describeOffset(info.offsetMs);
  $('clock-offset').dataset.offsetMs = String(info.offsetMs);
  $('session-ends').textContent = sessionExpiresAtMs
    ? new Date(sessionExpiresAtMs - info.offsetMs).toLocaleString()
    : 'unknown until you sign in on this page';

  let decoded = null;
  try {
    decoded = decodeUnverified(info.token);
  } catch (error) {
    showError(`The token could not be decoded: ${error.message}.`);
  }
  if (decoded) {
    $('token-header').textContent = JSON.stringify(decoded.header, null, 2);
    renderClaims(decoded.payload);
    renderGrants(decoded.payload.grants ?? {});
    $('placeholder-note').hidden = decoded.payload.sub !== PLACEHOLDER_ACCOUNT_SID;
  }

  const expires = new Date(info.expiresAtMs).toLocaleTimeString();
  addHistory('token', `New token for ${info.identity}, valid for ${info.ttl} s, expires at ${expires}.`);
  setStatus(`Signed in as ${info.identity}. Token valid for ${formatDuration(info.expiresAtMs - Date.now())}.`);
  if (wasHidden) {
    $('session-heading').focus();
  }
  updateCountdowns();
}

function showRequestError({ error, retryInMs, willRetry }) {
  // A 401 stops the client, and stopped() explains it.
  if (error.status === 401) {
    return;
  }
  const text = requestErrorText(error, retryInMs, willRetry);
  addHistory('error', text);
  showError(text);
  if (willRetry) {
    setStatus(`Token request failed. Retrying in ${formatDuration(retryInMs)}.`);
  }
}

function stopped({ reason, error }, { quiet, hadToken }) {
  if (reason === 'stopped') {
    return;
  }
  if (quiet && error?.code === 'missing_credentials') {
    clearError();
    showSignIn('Not signed in.');
    return;
  }
  if (reason === 'unauthorized') {
    // The browser drops the session cookie when it expires, so an ended session usually
    // shows up as missing credentials rather than as invalid_session.
    const text = error?.code === 'invalid_session' || hadToken
      ? 'Your session has ended, so the token can no longer be refreshed. Sign in again.'
      : 'You are not signed in, so no token can be fetched. Sign in again.';
    addHistory('stop', `Refresh stopped: ${text}`);
    showSignIn('Not signed in.');
    showError(text);
    return;
  }
  addHistory('stop', 'Refresh stopped.');
  setStatus('Token refresh stopped.');
}

function showSignIn(status) {
  client?.stop();
  client = null;
  $('session').hidden = true;
  $('signin').hidden = false;
  setStatus(status);
  $('username').focus();
}

function requestErrorText(error, retryInMs, willRetry) {
  const retry = willRetry ? ` Retrying in ${formatDuration(retryInMs)}.` : '';
  if (error.kind === 'network') {
    return `Could not reach the token server.${retry}`;
  }
  if (error.kind === 'invalid_response') {
    return `The token server sent a response this page cannot read.${retry}`;
  }
  switch (error.status) {
    case 403:
      return `The server refused a token: ${error.serverMessage || 'not allowed'}.`;
    case 429:
      return `Too many token requests.${retry}`;
    case 503:
      return `The token server is temporarily unavailable (503).${retry}`;
    default:
      if (error.status >= 500) {
        return `The token server failed (${error.status}).${retry}`;
      }
      return `The token request was rejected (${error.status}): ${error.serverMessage || 'no reason given'}.`;
  }
}

function loginErrorText(response, body) {
  const code = body?.error?.code;
  if (response.status === 401) {
    return 'The user name or password is not correct.';
  }
  if (response.status === 429) {
    const wait = Number(response.headers.get('Retry-After'));
    const when = Number.isFinite(wait) && wait > 0 ? `in ${formatDuration(wait * 1000)}` : 'later';
    return `Too many failed sign-in attempts. Try again ${when}.`;
  }
  if (code === 'users_disabled') {
    return 'Sign-in with a user name and password is not enabled on this server.';
  }
  return `Sign-in failed: ${serverMessage(body) || `the server returned status ${response.status}`}.`;
}

function renderClaims(payload) {
  const list = $('claims');
  list.replaceChildren();
  for (const [name, value] of Object.entries(payload)) {
    if (name === 'grants') {
      continue;
    }
    let text = typeof value === 'string' ? value : JSON.stringify(value);
    if (TIME_CLAIMS.has(name) && Number.isFinite(value)) {
      text = `${value} (${new Date(value * 1000).toISOString().replace('.000Z', 'Z')}, server clock)`;
    }
    appendPair(list, name, text);
  }
}

function renderGrants(grants) {
  const list = $('grants');
  list.replaceChildren();
  for (const [name, value] of Object.entries(grants)) {
    if (name === 'identity') {
      appendPair(list, 'Identity', String(value));
      continue;
    }
    const fields = value && typeof value === 'object' && Object.keys(value).length > 0
      ? JSON.stringify(value)
      : 'no settings';
    appendPair(list, GRANT_NAMES[name] ?? name, fields, name);
  }
}

function appendPair(list, term, description, key) {
  const row = document.createElement('div');
  if (key) {
    row.dataset.grant = key;
  }
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  dd.textContent = description;
  row.append(dt, dd);
  list.append(row);
}

function updateCountdowns() {
  if (!client || !client.current) {
    return;
  }
  const untilExpiry = client.msUntilExpiry();
  const untilNext = client.msUntilNextRequest();
  $('expires-in').textContent = untilExpiry > 0 ? formatDuration(untilExpiry) : 'expired';
  $('expires-in').dataset.ms = String(Math.round(untilExpiry));
  $('refresh-in').textContent = untilNext === null
    ? (client.state === 'fetching' ? 'now' : 'no refresh planned')
    : `${formatDuration(untilNext)}${client.state === 'retrying' ? ' (retry)' : ''}`;
  $('refresh-in').dataset.ms = untilNext === null ? '' : String(Math.round(untilNext));
}

function addHistory(outcome, text) {
  const item = document.createElement('li');
  item.dataset.outcome = outcome;
  const time = document.createElement('time');
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString();
  item.append(time, ` ${text}`);
  const list = $('history');
  list.prepend(item);
  while (list.children.length > HISTORY_LIMIT) {
    list.lastElementChild.remove();
  }
  $('history-empty').hidden = true;
}

function describeOffset(offsetMs) {
  if (Math.abs(offsetMs) < 2000) {
    return 'Your clock agrees with the server’s to within 2 seconds.';
  }
  const direction = offsetMs > 0 ? 'behind' : 'ahead of';
  return `Your clock is ${formatDuration(Math.abs(offsetMs))} ${direction} the server’s; the countdowns allow for it.`;
}

/** Formats milliseconds as `1 h 2 min`, `3 min 4 s` or `5.6 s`. */
function formatDuration(ms) {
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = whole % 60;
  if (hours > 0) {
    return `${hours} h ${minutes} min`;
  }
  if (minutes > 0) {
    return `${minutes} min ${rest} s`;
  }
  return `${rest} s`;
}

function setStatus(text) {
  $('status').textContent = text;
}

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = false;
}

function clearError() {
  $('error').textContent = '';
  $('error').hidden = true;
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function serverMessage(body) {
  return typeof body?.error?.message === 'string' ? body.error.message : '';
}
