// Runs the `oidc-provider` package (an OpenID Certified provider) on 127.0.0.1 for the
// end-to-end tests in ../oidc.rs.
//
// Usage: node provider.mjs < CONFIG_JSON
//
// The configuration comes on standard input, so client secrets stay off the command line. It
// is a JSON object:
//   clients      [{client_id, client_secret, alg, ttl, claims}]: client_credentials clients;
//                `alg` signs their access tokens (RS256, PS256, ES256 or EdDSA), `ttl` is the
//                token lifetime in seconds, `claims` are added to each access token.
//
// The provider listens on a free loopback port and prints one JSON line to stdout when ready:
// {"issuer": "http://127.0.0.1:PORT", "rsa_public_pem": "..."}. Access tokens are JWTs for the
// resource (audience) named in the token request's `resource` parameter.
//
// Test-only control route on the same port: POST /__test/rotate adds a new RSA key in front of
// the key set, so new RS256 tokens carry a new kid, and prints the new public key as a JSON
// line. It exists because oidc-provider reads its keys once, when built. GET /__test/stats
// answers {"jwks_requests": N}, the number of JWKS requests served so far.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const options = JSON.parse(readFileSync(0, 'utf8') || '{}');
const clients = options.clients ?? [];

function newKey(type, alg) {
  const { privateKey, publicKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    jwk: { ...jwk, kid: `${alg.toLowerCase()}-${randomUUID()}`, use: 'sig', alg },
    pem: publicKey.export({ format: 'pem', type: 'spki' }),
  };
}

let rsa = newKey('rsa', 'RS256');
const others = [newKey('rsa', 'PS256'), newKey('ec', 'ES256'), newKey('okp', 'EdDSA')];
const retired = [];

function build(issuer) {
  const byId = new Map(clients.map((client) => [client.client_id, client]));
  const provider = new Provider(issuer, {
    clients: clients.map((client) => ({
      client_id: client.client_id,
      client_secret: client.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [rsa.jwk, ...retired.map((key) => key.jwk), ...others.map((key) => key.jwk)] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => {
          const settings = byId.get(client.clientId) ?? {};
          return {
            scope: 'token',
            audience: resource,
            accessTokenTTL: settings.ttl ?? 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: settings.alg ?? 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => byId.get(token.clientId)?.claims,
  });
  provider.proxy = false;
  return provider;
}

let handler = null;
let jwksRequests = 0;
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/__test/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jwks_requests: jwksRequests }));
    return;
  }
  if (req.url.startsWith('/jwks')) {
    jwksRequests += 1;
  }
  if (req.method === 'POST' && req.url === '/__test/rotate') {
    retired.unshift(rsa);
    rsa = newKey('rsa', 'RS256');
    handler = build(issuer).callback();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: rsa.jwk.kid }));
    return;
  }
  handler(req, res);
});

let issuer;
server.listen(0, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  handler = build(issuer).callback();
  process.stdout.write(`${JSON.stringify({ issuer, rsa_kid: rsa.jwk.kid, rsa_public_pem: rsa.pem })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
