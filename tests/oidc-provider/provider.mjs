// OpenID Connect provider for Conductor's end-to-end login tests.
// TEST PEER ONLY: in-memory storage, a throw-away signing key, a login form
// that accepts any password. Never deploy this.
//
// Built on panva's oidc-provider (OpenID Certified), pinned in package.json.
//
// Environment:
//   PORT           port on 127.0.0.1 (0 or unset: the OS picks a free port)
//   REDIRECT_URIS  comma-separated redirect URIs allowed for both clients
//                  (required)
//   IGNORE_STDIN   "1": do not exit when stdin closes (for manual runs with
//                  stdin redirected from /dev/null, e.g. `node provider.mjs &`)
//   LOG_REQUESTS   "1": log every request (method, path, status) to stderr
//
// Protocol with whoever spawned it:
//   * stdout carries exactly one line, printed once listening:
//       {"issuer":"http://127.0.0.1:<port>","port":<port>}
//     Everything else goes to stderr.
//   * It exits on SIGTERM / SIGINT, and when its stdin reaches end of file
//     (so a crashed test harness does not leave it running).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

// oidc-provider prints some notices with console.info (stdout). stdout is
// reserved for the single JSON line, so route console.log/info to stderr
// before the library is loaded (hence the dynamic import below).
console.log = console.error;
console.info = console.error;
const log = (...args) => console.error('[oidc-provider]', ...args);
process.stdout.on('error', () => {}); // reader went away: nothing more to say

const { default: Provider } = await import('oidc-provider');

// --- configuration from the environment ------------------------------------

const PORT = Number(process.env.PORT || 0);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  log(`invalid PORT ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}
const REDIRECT_URIS = (process.env.REDIRECT_URIS || '')
  .split(',').map((s) => s.trim()).filter(Boolean);
if (REDIRECT_URIS.length === 0) {
  log('REDIRECT_URIS is required (comma-separated redirect URIs for the clients)');
  process.exit(2);
}
for (const uri of REDIRECT_URIS) {
  if (!URL.canParse(uri)) {
    log(`REDIRECT_URIS: not a URL: ${JSON.stringify(uri)}`);
    process.exit(2);
  }
}

// --- lifetime: signals and stdin --------------------------------------------

let server;
function shutdown(why) {
  log(`exiting (${why})`);
  if (server) server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
if (process.env.IGNORE_STDIN !== '1') {
  process.stdin.on('data', () => {}); // discard input; we only watch for EOF
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

// --- users -----------------------------------------------------------------

// The login name typed in the form is the account id (the ID token's sub).
const USERS = {
  alice: {
    name: 'Alice Example',
    email: 'alice@example.test',
    email_verified: true,
    picture: 'https://example.test/alice.png',
  },
  bob: { name: 'Bob Example', email: 'bob@example.test', email_verified: false },
  // Mixed-case e-mail on purpose: the relying party must not trust the case.
  carol: { name: 'Carol Example', email: 'Carol@Example.TEST', email_verified: true },
};
const userClaims = (login) => (Object.hasOwn(USERS, login)
  ? USERS[login]
  : { name: login, email: `${login}@example.test`, email_verified: true });

// The claims each scope releases, and every claim a grant may cover.
const SCOPE_CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'picture'],
};
const ALL_CLAIMS = Object.values(SCOPE_CLAIMS).flat();

// --- the provider -----------------------------------------------------------

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `test-rs256-${randomBytes(4).toString('hex')}`,
    use: 'sig',
    alg: 'RS256',
  };
}

const clientDefaults = {
  redirect_uris: REDIRECT_URIS,
  response_types: ['code'],
  grant_types: ['authorization_code'],
  id_token_signed_response_alg: 'RS256',
};

const configuration = {
  clients: [
    {
      ...clientDefaults,
      client_id: 'conductor-confidential',
      client_secret: 'conductor-secret',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      ...clientDefaults,
      client_id: 'conductor-public',
      token_endpoint_auth_method: 'none',
    },
  ],
  jwks: { keys: [signingKey()] },
  enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  responseTypes: ['code'],
  scopes: Object.keys(SCOPE_CLAIMS),
  claims: SCOPE_CLAIMS,
  // Also put the scopes' claims in the ID token, not only at userinfo: the
  // relying party reads email / email_verified / name from the ID token.
  conformIdTokenClaims: false,
  pkce: { required: () => true }, // S256 (the only method offered) for every client
  features: {
    devInteractions: { enabled: true }, // the built-in login form
    userinfo: { enabled: true },
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() { return { sub, ...userClaims(sub) }; },
    };
  },
  // Consent is granted automatically: every login resumes straight to the
  // redirect_uri without a consent page.
  async loadExistingGrant(ctx) {
    const { client, session, params } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (!grant) {
      grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    }
    grant.addOIDCScope(String(params.scope || 'openid'));
    grant.addOIDCClaims(ALL_CLAIMS);
    await grant.save();
    return grant;
  },
  ttl: {
    AuthorizationCode: 60,
    AccessToken: 600,
    IdToken: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
};

// Listen first so that PORT=0 yields the real port, which is part of the
// issuer; the provider is attached before anyone can learn the port.
server = createServer();
server.on('error', (err) => {
  log(`cannot listen on 127.0.0.1:${PORT}: ${err.message}`);
  process.exit(1);
});
server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration);
  provider.proxy = false;
  provider.on('server_error', (ctx, err) => log('server_error', ctx.method, ctx.path, err));
  if (process.env.LOG_REQUESTS === '1') {
    provider.use(async (ctx, next) => {
      await next();
      log(ctx.method, ctx.path, ctx.status, ctx.response.get('location') || '');
    });
  }
  server.on('request', provider.callback());
  log(`ready at ${issuer}; redirect URIs: ${REDIRECT_URIS.join(', ')}`);
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});
