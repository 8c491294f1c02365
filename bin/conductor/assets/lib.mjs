/*
 * Conductor authentication library, framework-free ES module (the companion of the Angular `/user/lib`).
 * No dependencies: uses fetch, Promise, URLSearchParams and localStorage.
 *
 * Usage:
 *   import auth from 'https://conductor.example.org/user/lib.mjs';     // client for this Conductor
 *   // or: import { createAuthClient } from '...'; const auth = createAuthClient({ baseUrl: 'https://...' });
 *
 *   const state = await auth.check(location.href);
 *   if (state.authenticated) {
 *     // state = {authenticated: true, token, profile: {idhash, name, email, avatar_url, username, ...}}
 *     const perms = await auth.authorize(state.token, 'os.datastore'); // {token, userid, permissions, service}
 *   } else {
 *     // state = {authenticated: false, providers: {google: {url}, dev: {url}, ...}}
 *     await auth.login('google');                 // navigates to the provider's login url, back to location.href
 *   }
 *
 * API of a client (createAuthClient({ baseUrl, fetch } = {}); the default export is createAuthClient()):
 *   baseUrl                  the Conductor base URL in use (no trailing slash).
 *   check(next)              GET <base>/user/check?next=<next>&jwt=<stored token>. Resolves
 *                            {authenticated: true, token, profile} or {authenticated: false, providers}; in the
 *                            latter case a stored token is forgotten (it was invalid or expired). Rejects (Error
 *                            with .status when the server answered) only when the request fails.
 *   authorize(token, service) GET <base>/user/authorize?jwt=<token>&service=<service>; token defaults to the
 *                            stored one. Resolves with the response: {token, userid, permissions, service}, or
 *                            {permissions: {}} for a bad token.
 *   login(provider, next)    asks /user/check for the providers' login urls and navigates to the one named
 *                            (optional when the server lists only one); next defaults to location.href.
 *   logout()                 forgets the stored token (tokens are stateless: no server call).
 *   token()                  the stored user token, or null.
 *
 * Like lib.js, importing this module takes a token handed back after login (`#jwt=<token>` by default, or
 * `?jwt=<token>`), stores it and removes it from the address bar with history.replaceState. Storage is the
 * same as lib.js and the original ngStorage-based library: localStorage key 'ngStorage-jwt', JSON-encoded
 * value, so pages mixing both libraries share one login.
 */

// The server substitutes its public base URL (no trailing slash) into this string when serving the file.
const DEFAULT_BASE_URL = '__CONDUCTOR_BASE_URL__';

const STORAGE_KEY = 'ngStorage-jwt';
// Compact JWS shape; anything else found in a URL is dropped rather than stored and sent around.
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
// Login urls come from the server; refuse anything that is not http(s) or same-origin (e.g. javascript:).
const SAFE_URL = /^(https?:\/\/|\/)/i;

const win = typeof window !== 'undefined' ? window : undefined;

const trimSlashes = (url) => String(url).replace(/\/+$/, '');

// Where the API lives when the server did not substitute the placeholder (file served by something else):
// derive it from this module's own URL ('<base>/user/lib...'), else use the page's origin ('').
// (The test must not spell the placeholder out, or the substitution would rewrite it too.)
function initialBaseUrl() {
  if (!DEFAULT_BASE_URL.startsWith('__')) return trimSlashes(DEFAULT_BASE_URL);
  try {
    const self = new URL(import.meta.url);
    const match = /^(.*?)\/user\/lib[^/]*$/.exec(self.pathname);
    if (match && /^https?:$/.test(self.protocol)) return self.origin + match[1];
  } catch (e) { /* not loaded over http(s) */ }
  return '';
}

/* ---- token storage (same key and encoding as lib.js) -------------------------------------------- */

// Used only when localStorage cannot be written (blocked storage, old Safari private mode).
let memoryToken = null;

function localStore() {
  try {
    return (win && win.localStorage) || null; // reading the property itself can throw (SecurityError)
  } catch (e) {
    return null;
  }
}

function readToken() {
  let raw = null;
  try {
    const store = localStore();
    raw = store ? store.getItem(STORAGE_KEY) : null;
  } catch (e) { raw = null; }
  if (raw === null) return memoryToken;
  try {
    const value = JSON.parse(raw); // the original (ngStorage) wrote '"<token>"'
    return typeof value === 'string' && value ? value : null;
  } catch (e) {
    return JWT_SHAPE.test(raw) ? raw : null; // tolerate a bare token written by someone else
  }
}

function writeToken(token) {
  memoryToken = null;
  try {
    localStore().setItem(STORAGE_KEY, JSON.stringify(token));
  } catch (e) {
    memoryToken = token;
  }
}

function clearToken() {
  memoryToken = null;
  try {
    const store = localStore();
    if (store) store.removeItem(STORAGE_KEY);
  } catch (e) { /* nothing stored then */ }
}

/* ---- token pick-up from the URL ------------------------------------------------------------------ */

const decode = (text) => {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch (e) {
    return text;
  }
};

// Splits 'a=1&jwt=T&b=2' into the jwt value (null when absent) and the other parameters, untouched.
function splitJwt(params) {
  const kept = [];
  let token = null;
  for (const part of params ? params.split('&') : []) {
    const eq = part.indexOf('=');
    if (decode(eq < 0 ? part : part.slice(0, eq)) === 'jwt') {
      if (token === null) token = eq < 0 ? '' : decode(part.slice(eq + 1));
    } else if (part !== '') {
      kept.push(part);
    }
  }
  return { token, rest: kept.join('&') };
}

// Takes `jwt` out of the fragment ('#jwt=T', '#a=1&jwt=T', or a router's '#/path?jwt=T') and out of the
// query, rewrites the address without it, and returns the token if it looks like one.
function takeTokenFromLocation() {
  const loc = win && win.location;
  if (!loc || typeof loc.search !== 'string') return null;
  const hash = loc.hash.replace(/^#/, '');
  const q = hash.indexOf('?');
  const fromHash = splitJwt(q < 0 ? hash : hash.slice(q + 1));
  const fromQuery = splitJwt(loc.search.replace(/^\?/, ''));
  if (fromHash.token === null && fromQuery.token === null) return null;

  const search = fromQuery.token === null ? loc.search : (fromQuery.rest ? '?' + fromQuery.rest : '');
  let fragment = hash;
  if (fromHash.token !== null) {
    fragment = q < 0 ? fromHash.rest : hash.slice(0, q) + (fromHash.rest ? '?' + fromHash.rest : '');
  }
  try {
    win.history.replaceState(win.history.state, '', loc.pathname + search + (fragment ? '#' + fragment : ''));
  } catch (e) { /* no history API or sandboxed document: leave the address as it is */ }

  // The fragment is Conductor's default hand-over, so it wins if both are present.
  const token = fromHash.token !== null ? fromHash.token : fromQuery.token;
  return JWT_SHAPE.test(token) ? token : null;
}

// Run at import: a fresh token from a login replaces whatever was stored before.
const arrived = takeTokenFromLocation();
if (arrived) writeToken(arrived);

const DEFAULT_RESOLVED_BASE_URL = initialBaseUrl();

/* ---- client ------------------------------------------------------------------------------------- */

export function createAuthClient({ baseUrl, fetch: fetchImpl } = {}) {
  const base = baseUrl == null ? DEFAULT_RESOLVED_BASE_URL : trimSlashes(baseUrl);
  const doFetch = fetchImpl || ((...args) => globalThis.fetch(...args));

  // GET <base><path>?<params> as JSON. The token goes in the query like the original library did: an
  // Authorization header would cost a CORS preflight. No cookies: tokens are not cookies.
  async function getJson(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null) query.append(key, String(value));
    }
    const response = await doFetch(`${base}${path}?${query}`, {
      credentials: 'omit',
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    });
    if (!response.ok) {
      const error = new Error(`Conductor ${path} answered HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  return {
    baseUrl: base,

    token() {
      return readToken();
    },

    async check(next) {
      const token = readToken();
      const data = (await getJson('/user/check', { next, jwt: token })) || {};
      if (data.authenticated) return { authenticated: true, token, profile: data.profile };
      // Invalid or expired: forget it, unless another tab or call stored a new one meanwhile.
      if (token && readToken() === token) clearToken();
      return { authenticated: false, providers: data.providers || {} };
    },

    authorize(token, service) {
      return getJson('/user/authorize', { jwt: token == null ? readToken() : token, service });
    },

    async login(provider, next) {
      if (next === undefined && win) next = win.location.href;
      // Asked without a token, so the server lists the providers with `next` built into their urls.
      const data = (await getJson('/user/check', { next })) || {};
      const providers = data.providers || {};
      const names = Object.keys(providers);
      const name = provider == null && names.length === 1 ? names[0] : provider;
      const entry = Object.prototype.hasOwnProperty.call(providers, name) ? providers[name] : null;
      if (!entry || typeof entry.url !== 'string' || !SAFE_URL.test(entry.url)) {
        throw new Error(`Conductor login: no provider "${name}" (available: ${names.join(', ') || 'none'})`);
      }
      win.location.assign(entry.url);
      return entry.url;
    },

    logout() {
      clearToken();
    },
  };
}

export default createAuthClient();
