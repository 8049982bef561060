// The reference token server for scripts/bench/server/run.sh, written the way Twilio's
// quickstarts write theirs: Express parses a JSON body, and twilio-node's AccessToken mints a
// token with a ChatGrant on every POST /token. Unlike the Rust server it checks no credentials
// and applies no policy.
//
// Usage: node server.js PORT
// The SIDs and the secret are fake placeholders; the server listens on 127.0.0.1 only.
'use strict';

const express = require('express');
const twilio = require('twilio');

const { AccessToken } = twilio.jwt;
const { ChatGrant } = AccessToken;

const ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';
const API_KEY_SID = 'SKfedcba9876543210fedcba9876543210';
const API_SECRET = 'FAKEsecretDoNotUse0123456789abcd';
const CHAT_SERVICE_SID = 'IS00000000000000000000000000000001';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node server.js PORT');
  process.exit(2);
}

const app = express();
app.use(express.json());

app.post('/token', (req, res) => {
  const identity = 'bench-user';
  const token = new AccessToken(ACCOUNT_SID, API_KEY_SID, API_SECRET, { identity, ttl: 3600 });
  token.addGrant(new ChatGrant({ serviceSid: CHAT_SERVICE_SID }));
  res.set('Cache-Control', 'no-store');
  res.json({ identity, token: token.toJwt() });
});

const server = app.listen(port, '127.0.0.1', () => {
  console.error(`node reference server listening on 127.0.0.1:${port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
