// Mints the typical Chat token with the official twilio-node helper for a fixed time.
//
// The token has identity "alice", a Chat grant with a service SID and the library's defaults
// (TTL 3600 s, no `nbf`). Each call to `toJwt()` reads the clock and signs with jsonwebtoken,
// as a server does per request.
//
// Usage: node mint_rate.js [SECONDS]  (default 3). Stdout gets one line with two integers: tokens
// per second of CPU time (all of the process's threads), then tokens per second of wall-clock
// time. The first does not drop when another process shares the core, so it is the one to
// compare. Stderr gets the count, the times and the versions used.
"use strict";

const twilio = require("twilio");

const AccessToken = twilio.jwt.AccessToken;
const ChatGrant = AccessToken.ChatGrant;

// Tokens minted between two reads of the timer.
const BATCH = 100;

function main() {
  const arg = process.argv[2];
  const seconds = arg === undefined ? 3 : Number(arg);
  if (!(seconds > 0 && Number.isFinite(seconds))) {
    console.error(
      `error: invalid SECONDS ${JSON.stringify(arg)}: expected a positive number such as 3`,
    );
    return 2;
  }

  const token = new AccessToken(
    "AC0123456789abcdef0123456789abcdef",
    "SKfedcba9876543210fedcba9876543210",
    "FAKEsecretDoNotUse0123456789abcd",
    { identity: "alice" },
  );
  token.addGrant(new ChatGrant({ serviceSid: "IS00000000000000000000000000000001" }));
  const sample = token.toJwt();

  let minted = 0;
  let elapsed = 0;
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (;;) {
    for (let i = 0; i < BATCH; i++) {
      token.toJwt();
    }
    minted += BATCH;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    if (elapsed >= seconds) {
      break;
    }
  }
  const cpuUsed = process.cpuUsage(cpuStart);
  const cpu = (cpuUsed.user + cpuUsed.system) / 1e6;

  const versions = ["twilio", "jsonwebtoken"]
    .map((name) => `${name} ${require(`${name}/package.json`).version}`)
    .join(" + ");
  console.error(
    `node ${process.version} ${versions}: ${minted} tokens in ${elapsed.toFixed(3)} s wall, ` +
      `${cpu.toFixed(3)} s CPU, ${sample.length} bytes each`,
  );
  console.log(`${Math.round(minted / cpu)} ${Math.round(minted / elapsed)}`);
  return 0;
}

process.exitCode = main();
