// The OpenID Provider of the OIDC sign-in tests: the certified `oidc-provider` package with a
// login page of our own, so each account signs in with the `amr` (authentication methods) its
// configuration gives it. Started by tests/support/oidc.py:
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"host", "port", "issuer", "clients": [oidc-provider client metadata...],
//          "accounts": {"<login>": {"password", "amr": [...], "claims": {...}}},
//          "id_token_ttl": seconds}
// The accounts are read again at every sign-in, so a test may change them in the file.
// A new RSA signing key (new "kid") is made at every start: restarting on the same port is
// how the tests rotate the issuer's key. Prints one line "ready <kid>" once it listens.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
// Read again at each look-up: a test changes an account's groups between two sign-ins.
const accounts = () => JSON.parse(readFileSync(process.argv[2], 'utf8')).accounts;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = randomBytes(8).toString('hex');
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  // Claims the way Entra ID sends them: in the ID token, without a separate scope (amr comes
  // with "openid": the provider would send it only when asked by name otherwise).
  claims: {
    acr: null, auth_time: null, iss: null, sid: null,
    openid: ['sub', 'amr'],
    profile: ['name', 'preferred_username', 'groups', 'roles', 'customers'],
    email: ['email', 'email_verified'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  ttl: { IdToken: config.id_token_ttl ?? 3600 },
  features: { devInteractions: { enabled: false } },
  async findAccount(ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account.claims }; } };
  },
  // First-party client: no consent page (the grant is made here instead).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email');
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>Provider error</title><h1>Provider error</h1>`
      + `<p id="error">${escape(out.error)}: ${escape(out.error_description ?? '')}</p>`;
  },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));

function loginPage(uid, client, error = '') {
  return `<!doctype html><html><head><title>Test OpenID Provider</title></head><body>
<h1>Test OpenID Provider</h1><p>Sign in to continue to ${escape(client)}.</p>
${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label for="login">Email or username</label><input id="login" name="login" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Continue</button></form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, login) {
  const details = await provider.interactionDetails(req, res);
  const client = details.params.client_id;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  if (!login) {
    res.end(loginPage(details.uid, client));
    return;
  }
  const form = await readForm(req);
  const account = accounts()[form.get('login')];
  if (!account || account.password !== form.get('password')) {
    res.statusCode = 401;
    res.end(loginPage(details.uid, client, 'Wrong login or password.'));
    return;
  }
  const result = { login: { accountId: form.get('login'), amr: account.amr, remember: false } };
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const match = new URL(req.url, config.issuer).pathname.match(/^\/interaction\/([\w-]+)(\/login)?$/);
  if (!match) {
    callback(req, res);
    return;
  }
  interaction(req, res, Boolean(match[2])).catch((error) => {
    res.statusCode = 400;
    res.end(`interaction failed: ${escape(error.message)}`);
  });
});
server.listen(config.port, config.host, () => console.log(`ready ${kid}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
