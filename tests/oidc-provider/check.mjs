// Self-check for provider.mjs: `node check.mjs` (after `npm ci`).
// Starts the provider the way a test harness would (PORT=0, stdin/stdout
// piped), reads its JSON line, then plays a relying party with nothing but
// Node's fetch (redirect: 'manual') and a small cookie jar: discovery,
// authorization code + PKCE S256 login through the devInteractions form,
// token exchange, ID token signature and claims, plus a few refusals and the
// provider's exit on SIGTERM and on stdin EOF. Prints `N passed, M failed`.
import { spawn } from 'node:child_process';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const PROVIDER = fileURLToPath(new URL('./provider.mjs', import.meta.url));
const REDIRECT = 'http://127.0.0.1:9/cb';
const CONFIDENTIAL = { id: 'conductor-confidential', secret: 'conductor-secret' };
const PUBLIC = { id: 'conductor-public' };
const VERBOSE = process.env.VERBOSE === '1';

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed += 1; else failed += 1;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ` ${detail}` : ''}`);
  return ok;
}
const b64u = (buf) => Buffer.from(buf).toString('base64url');
const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// --- spawning the provider as a harness would -------------------------------

function startProvider() {
  const child = spawn(process.execPath, [PROVIDER], {
    env: { ...process.env, PORT: '0', REDIRECT_URIS: REDIRECT },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const p = { child, stdout: '', stderr: '' };
  p.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  child.stderr.on('data', (d) => { p.stderr += d; });
  p.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no JSON line within 20 s')), 20000);
    child.stdout.on('data', (d) => {
      p.stdout += d;
      const nl = p.stdout.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); resolve(p.stdout.slice(0, nl)); }
    });
    p.exited.then(({ code }) => reject(new Error(`provider exited (${code}) before its JSON line`)));
  });
  return p;
}

async function waitExit(p, ms) {
  return Promise.race([p.exited, sleep(ms).then(() => null)]);
}

// --- a minimal relying party --------------------------------------------------

// Cookie jar keyed by name (paths ignored; fine for one provider).
function jarFetch(jar) {
  return async (url, opts = {}) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const headers = { ...(opts.headers || {}), ...(cookie ? { cookie } : {}) };
    const res = await fetch(url, { ...opts, redirect: 'manual', headers });
    for (const c of res.headers.getSetCookie()) {
      const [kv, ...attrs] = c.split(';').map((s) => s.trim());
      const i = kv.indexOf('=');
      const [name, value] = [kv.slice(0, i), kv.slice(i + 1)];
      const expired = attrs.some((a) => /^max-age=0$/i.test(a)
        || (/^expires=/i.test(a) && Date.parse(a.slice(8)) < Date.now()));
      if (expired || value === '') jar.delete(name); else jar.set(name, value);
    }
    return res;
  };
}

// Runs /auth -> ... -> redirect_uri by hand. Returns the callback parameters,
// the PKCE verifier, state, nonce and the trace of hops.
async function login(disc, { client, user, pkce = true }) {
  const req = jarFetch(new Map());
  const verifier = b64u(randomBytes(32));
  const challenge = b64u(createHash('sha256').update(verifier).digest());
  const state = b64u(randomBytes(12));
  const nonce = b64u(randomBytes(12));
  const auth = new URL(disc.authorization_endpoint);
  const params = {
    client_id: client.id,
    response_type: 'code',
    scope: 'openid email profile',
    redirect_uri: REDIRECT,
    state,
    nonce,
    ...(pkce ? { code_challenge: challenge, code_challenge_method: 'S256' } : {}),
  };
  for (const [k, v] of Object.entries(params)) auth.searchParams.set(k, v);

  const trace = [];
  let form = null;
  let url = auth.href;
  for (let hop = 0; hop < 10 && !url.startsWith(REDIRECT); hop += 1) {
    let res = await req(url);
    trace.push(`GET ${new URL(url).pathname} -> ${res.status}`);
    if (res.status === 200) {
      const html = await res.text();
      const formHtml = html.match(/<form[\s\S]*?<\/form>/)?.[0];
      const action = formHtml?.match(/action="([^"]+)"/)?.[1];
      const prompt = formHtml?.match(/name="prompt" value="([^"]+)"/)?.[1];
      if (!action || prompt !== 'login') {
        throw new Error(`expected the login form at ${url}, got: ${html.slice(0, 400)}`);
      }
      form = { html: formHtml, action: action.replaceAll('&amp;', '&') };
      const body = new URLSearchParams({ prompt: 'login', login: user, password: 'anything' });
      res = await req(new URL(form.action, url).href, { method: 'POST', body });
      trace.push(`POST ${new URL(form.action, url).pathname} -> ${res.status}`);
    }
    const loc = res.headers.get('location');
    if (!loc) throw new Error(`no redirect from ${url} (HTTP ${res.status}): ${await res.text()}`);
    trace[trace.length - 1] += ` Location: ${loc.split('?')[0]}`;
    url = new URL(loc, url).href;
  }
  if (!url.startsWith(REDIRECT)) throw new Error(`never reached the redirect_uri (last ${url})`);
  return {
    cb: new URL(url).searchParams, verifier, state, nonce, trace, form,
  };
}

async function token(disc, client, params) {
  const headers = {};
  const body = new URLSearchParams(params);
  if (client.secret) {
    headers.authorization = `Basic ${Buffer.from(
      `${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`,
    ).toString('base64')}`;
  } else {
    body.set('client_id', client.id);
  }
  const res = await fetch(disc.token_endpoint, { method: 'POST', body, headers });
  return { status: res.status, json: await res.json() };
}

function decodeJwt(jwt) {
  const [h, p, s] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

// Full login + code exchange; checks the ID token and returns its claims.
async function loginAndVerify(ctx, { client, user, expect }) {
  const { disc, jwks, issuer } = ctx;
  const r = await login(disc, { client, user });
  check(`${user}/${client.id}: callback has code, state and iss`,
    !!r.cb.get('code') && r.cb.get('state') === r.state && r.cb.get('iss') === issuer,
    r.cb.get('error') ? `${r.cb.get('error')}: ${r.cb.get('error_description')}` : '');
  const tr = await token(disc, client, {
    grant_type: 'authorization_code', code: r.cb.get('code'), redirect_uri: REDIRECT, code_verifier: r.verifier,
  });
  if (!check(`${user}/${client.id}: token endpoint returns an id_token`, tr.status === 200 && !!tr.json.id_token,
    `(HTTP ${tr.status}${tr.json.error ? ` ${tr.json.error}` : ''})`)) return { r };
  const jwt = decodeJwt(tr.json.id_token);
  const jwk = jwks.keys.find((k) => k.kid === jwt.header.kid);
  const sigOk = jwt.header.alg === 'RS256' && !!jwk
    && verify('sha256', Buffer.from(jwt.signingInput), createPublicKey({ key: jwk, format: 'jwk' }), jwt.signature);
  check(`${user}/${client.id}: id_token RS256 signature verifies with the JWKS`, sigOk, `kid=${jwt.header.kid}`);
  const c = jwt.payload;
  const want = { iss: issuer, aud: client.id, sub: user, nonce: r.nonce, ...expect };
  const bad = Object.entries(want).filter(([k, v]) => c[k] !== v);
  const extra = Object.keys(expect).includes('picture') ? [] : ['picture'].filter((k) => k in c);
  check(`${user}/${client.id}: id_token claims`, bad.length === 0 && extra.length === 0,
    bad.length || extra.length
      ? `mismatch ${JSON.stringify(bad.map(([k]) => [k, c[k], want[k]]))} unexpected ${extra}`
      : JSON.stringify({
        sub: c.sub, email: c.email, email_verified: c.email_verified, name: c.name, picture: c.picture,
      }));
  if (VERBOSE) console.log(`  id_token payload ${JSON.stringify(c)}`);
  return { r, tr, claims: c };
}

// --- the checks ---------------------------------------------------------------

const p = startProvider();
const overall = setTimeout(() => {
  console.log('FAIL overall timeout (60 s)');
  p.child.kill('SIGKILL');
  process.exit(1);
}, 60000);

try {
  const line = await p.ready;
  const m = line.match(/^\{"issuer":"http:\/\/127\.0\.0\.1:(\d+)","port":(\d+)\}$/);
  check('stdout JSON line', !!m && m[1] === m[2] && Number(m[2]) > 0, line);
  const { issuer } = JSON.parse(line);

  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  check('discovery', disc.issuer === issuer
    && JSON.stringify(disc.response_types_supported) === '["code"]'
    && JSON.stringify(disc.code_challenge_methods_supported) === '["S256"]'
    && JSON.stringify(disc.id_token_signing_alg_values_supported) === '["RS256"]'
    && ['openid', 'email', 'profile'].every((s) => disc.scopes_supported.includes(s)),
  `token_endpoint=${disc.token_endpoint}`);
  const jwks = await (await fetch(disc.jwks_uri)).json();
  check('jwks has one RS256 key', jwks.keys.length === 1 && jwks.keys[0].kty === 'RSA'
    && jwks.keys[0].alg === 'RS256' && !('d' in jwks.keys[0]));
  const ctx = { disc, jwks, issuer };

  // alice, confidential client (client_secret_basic)
  const alice = await loginAndVerify(ctx, {
    client: CONFIDENTIAL,
    user: 'alice',
    expect: {
      email: 'alice@example.test', email_verified: true, name: 'Alice Example', picture: 'https://example.test/alice.png',
    },
  });
  const f = alice.r.form;
  check('login form fields', !!f && /name="prompt" value="login"/.test(f.html) && /name="login"/.test(f.html)
    && /name="password"/.test(f.html) && /method="post"/.test(f.html)
    && new URL(f.action).pathname.match(/^\/interaction\/[^/]+$/) !== null, f?.action);
  console.log(`  redirect sequence:\n    ${alice.r.trace.join('\n    ')}`);
  if (VERBOSE) console.log(`  login form: ${f?.html}`);

  // userinfo with alice's access token
  const ui = await fetch(disc.userinfo_endpoint, { headers: { authorization: `Bearer ${alice.tr?.json.access_token}` } });
  const uiBody = await ui.json();
  check('userinfo', ui.status === 200 && uiBody.sub === 'alice' && uiBody.email === 'alice@example.test', JSON.stringify(uiBody));

  // replaying alice's code must fail (single use; this also revokes the tokens it issued)
  const replay = await token(disc, CONFIDENTIAL, {
    grant_type: 'authorization_code', code: alice.r.cb.get('code'), redirect_uri: REDIRECT, code_verifier: alice.r.verifier,
  });
  check('replayed code refused', replay.status === 400 && replay.json.error === 'invalid_grant', JSON.stringify(replay.json));

  // bob: email_verified false
  await loginAndVerify(ctx, {
    client: CONFIDENTIAL,
    user: 'bob',
    expect: { email: 'bob@example.test', email_verified: false, name: 'Bob Example' },
  });

  // carol via the public client (no secret): mixed-case e-mail kept as is
  await loginAndVerify(ctx, {
    client: PUBLIC,
    user: 'carol',
    expect: { email: 'Carol@Example.TEST', email_verified: true, name: 'Carol Example' },
  });

  // any other login gets derived claims
  await loginAndVerify(ctx, {
    client: CONFIDENTIAL,
    user: 'dave',
    expect: { email: 'dave@example.test', email_verified: true, name: 'dave' },
  });

  // wrong code_verifier refused
  {
    const r = await login(disc, { client: CONFIDENTIAL, user: 'alice' });
    const t = await token(disc, CONFIDENTIAL, {
      grant_type: 'authorization_code', code: r.cb.get('code'), redirect_uri: REDIRECT, code_verifier: b64u(randomBytes(32)),
    });
    check('wrong code_verifier refused', t.status === 400 && t.json.error === 'invalid_grant', JSON.stringify(t.json));
  }
  // wrong client secret refused
  {
    const r = await login(disc, { client: CONFIDENTIAL, user: 'alice' });
    const t = await token(disc, { ...CONFIDENTIAL, secret: 'wrong' }, {
      grant_type: 'authorization_code', code: r.cb.get('code'), redirect_uri: REDIRECT, code_verifier: r.verifier,
    });
    check('wrong client secret refused', t.status === 401 && t.json.error === 'invalid_client', JSON.stringify(t.json));
  }
  // PKCE is required, for the confidential client too
  for (const client of [CONFIDENTIAL, PUBLIC]) {
    const r = await login(disc, { client, user: 'alice', pkce: false });
    check(`missing code_challenge refused (${client.id})`, r.cb.get('error') === 'invalid_request' && !r.cb.get('code'),
      `${r.cb.get('error')}: ${r.cb.get('error_description')}`);
  }
  // unregistered redirect_uri refused (no redirect to it)
  {
    const u = new URL(disc.authorization_endpoint);
    Object.entries({
      client_id: CONFIDENTIAL.id, response_type: 'code', scope: 'openid', redirect_uri: 'http://127.0.0.1:9/evil',
      code_challenge: b64u(randomBytes(32)), code_challenge_method: 'S256',
    }).forEach(([k, v]) => u.searchParams.set(k, v));
    const res = await fetch(u, { redirect: 'manual' });
    check('unregistered redirect_uri refused', res.status === 400 && !res.headers.get('location'), `(HTTP ${res.status})`);
  }

  // SIGTERM: clean exit, and nothing else was ever written to stdout
  p.child.kill('SIGTERM');
  const ex = await waitExit(p, 5000);
  check('exits with 0 on SIGTERM', ex && ex.code === 0, JSON.stringify(ex));
  check('stdout held exactly one line', p.stdout === `${line}\n`, JSON.stringify(p.stdout.slice(0, 200)));
} catch (err) {
  check('no exception', false, err.stack);
  console.log(`provider stderr:\n${p.stderr}`);
  p.child.kill('SIGKILL');
}

// stdin EOF: a second instance must exit by itself when its stdin closes
{
  const q = startProvider();
  try {
    await q.ready;
    q.child.stdin.end();
    const ex = await waitExit(q, 5000);
    check('exits when stdin closes', ex && ex.code === 0, JSON.stringify(ex));
  } catch (err) {
    check('exits when stdin closes', false, err.message);
  }
  q.child.kill('SIGKILL');
}

clearTimeout(overall);
if (failed && VERBOSE) console.log(`provider stderr:\n${p.stderr}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
