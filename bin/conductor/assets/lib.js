/*
 * Conductor authentication library, Angular 1.x binding (served as GET /user/lib).
 *
 * A drop-in replacement for the os-auth-client build that OS Conductor served, so the existing
 * OpenSpending pages (os-packager, os-admin, os-viewer, os-explorer) keep working unchanged.
 * Classic script, ES5 syntax, no build step; needs only `window.angular` (1.x) loaded first.
 *
 * Usage:
 *   <script src="angular.js"></script>
 *   <script src="https://conductor.example.org/user/lib"></script>
 *   angular.module('app', ['authClient.services'])          // or ['authClient']
 *     .run(['authenticate', 'authorize', function (authenticate, authorize) {
 *       authenticate.check(window.location.href).then(function (res) {
 *         // logged in: res = {token: '<user token>', profile: {idhash, name, email, avatar_url, username, ...}}
 *         return authorize.check(res.token, 'os.datastore');  // -> {token, userid, permissions, service}
 *       }, function (providers) {
 *         // not logged in: providers = {google: {url: '...'}, dev: {url: '...'}, ...}
 *         // authenticate.login(providers.google.url, '_self');
 *       });
 *     }]);
 *
 * Angular modules: 'authClient' (requires 'authClient.config' and 'authClient.services'),
 *   'authClient.config' (value 'authClient.config' = {debug: true}), 'authClient.services'.
 * Services in 'authClient.services':
 *   authenticate.check(next)       GET <base>/user/check?next=<next>&jwt=<stored token>. Resolves
 *                                  {token, profile} when logged in; otherwise forgets the stored token and
 *                                  rejects with the `providers` object (each entry has a login `url`).
 *                                  Rejects with {} when the request itself fails.
 *   authenticate.getToken()        the stored user token, or undefined.
 *   authenticate.login(url, target) opens a provider's login url ($window.open(url, target)).
 *   authenticate.logout()          forgets the stored token (tokens are stateless: no server call).
 *   authorize.check(token, service) GET <base>/user/authorize?jwt=<token>&service=<service>. Resolves with the
 *                                  response ({token, userid, permissions, service}, or {permissions: {}} for a
 *                                  bad token); rejects with {} when the request fails.
 *   baseUrl.getBaseUrl() / baseUrl.setBaseUrl(url)   the Conductor base URL used by the two services above;
 *                                  also settable in a config block through `baseUrlProvider.setBaseUrl(url)`.
 *
 * Token hand-over: after login Conductor sends the browser back to `next` with `#jwt=<token>` (default) or
 * `?jwt=<token>` (when configured so). This script takes the token from either as soon as it runs (before
 * Angular reads the URL), stores it and removes it from the address bar with history.replaceState, so it
 * does not linger in history, bookmarks or Referer headers. A token set later through Angular's
 * $location.search() (os-packager's login pop-up does this) is picked up by authenticate.check().
 *
 * Storage: localStorage key 'ngStorage-jwt', value JSON-encoded (a quoted string), exactly what the
 * original stored through ngStorage, so tokens survive the upgrade and lib.mjs shares them.
 */
(function (window) {
  'use strict';

  // The server substitutes its public base URL (no trailing slash) into this string when serving the file.
  var DEFAULT_BASE_URL = '__CONDUCTOR_BASE_URL__';

  var STORAGE_KEY = 'ngStorage-jwt';
  // Compact JWS shape; anything else found in a URL is dropped rather than stored and sent around.
  var JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
  // Login urls come from the server; refuse anything that is not http(s) or same-origin (e.g. javascript:).
  var SAFE_URL = /^(https?:\/\/|\/)/i;

  function trimSlashes(url) {
    return String(url).replace(/\/+$/, '');
  }

  // Where the API lives when the server did not substitute the placeholder (file served by something
  // else): derive it from our own <script src=".../user/lib">, else use the page's origin.
  // (The test must not spell the placeholder out, or the substitution would rewrite it too.)
  function initialBaseUrl() {
    if (DEFAULT_BASE_URL.indexOf('__') !== 0) {
      return trimSlashes(DEFAULT_BASE_URL);
    }
    var script = window.document && window.document.currentScript;
    var match = script && script.src && /^(.*?)\/user\/lib[^\/]*$/.exec(script.src.split(/[?#]/)[0]);
    return match ? match[1] : '';
  }

  /* ---- token storage ---------------------------------------------------------------------------- */

  // Used only when localStorage cannot be written (blocked storage, old Safari private mode).
  var memoryToken = null;

  function localStore() {
    try {
      return window.localStorage || null; // reading the property itself can throw (SecurityError)
    } catch (e) {
      return null;
    }
  }

  function readToken() {
    var store = localStore();
    var raw = null;
    if (store) {
      try {
        raw = store.getItem(STORAGE_KEY);
      } catch (e) {
        raw = null;
      }
    }
    if (raw === null) {
      return memoryToken;
    }
    try {
      var value = JSON.parse(raw); // ngStorage wrote angular.toJson(token), i.e. '"<token>"'
      return typeof value === 'string' && value ? value : null;
    } catch (e) {
      return JWT_SHAPE.test(raw) ? raw : null; // tolerate a bare token written by someone else
    }
  }

  function writeToken(token) {
    var store = localStore();
    memoryToken = null;
    try {
      store.setItem(STORAGE_KEY, JSON.stringify(token));
    } catch (e) {
      memoryToken = token;
    }
  }

  function clearToken() {
    var store = localStore();
    memoryToken = null;
    if (store) {
      try {
        store.removeItem(STORAGE_KEY);
      } catch (e) { /* nothing stored then */ }
    }
  }

  /* ---- token pick-up from the URL ---------------------------------------------------------------- */

  function decode(text) {
    try {
      return decodeURIComponent(text.replace(/\+/g, ' '));
    } catch (e) {
      return text;
    }
  }

  // Splits 'a=1&jwt=T&b=2' into the jwt value (null when absent) and the other parameters, untouched.
  function splitJwt(params) {
    var parts = params ? params.split('&') : [];
    var kept = [];
    var token = null;
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      var key = decode(eq < 0 ? parts[i] : parts[i].slice(0, eq));
      if (key === 'jwt') {
        if (token === null) {
          token = eq < 0 ? '' : decode(parts[i].slice(eq + 1));
        }
      } else if (parts[i] !== '') {
        kept.push(parts[i]);
      }
    }
    return { token: token, rest: kept.join('&') };
  }

  // Takes `jwt` out of the fragment ('#jwt=T', '#a=1&jwt=T', or a router's '#/path?jwt=T') and out of the
  // query, rewrites the address without it, and returns the token if it looks like one.
  function takeTokenFromLocation() {
    var loc = window.location;
    if (!loc || typeof loc.search !== 'string') {
      return null;
    }
    var hash = loc.hash.replace(/^#/, '');
    var q = hash.indexOf('?');
    var fromHash = splitJwt(q < 0 ? hash : hash.slice(q + 1));
    var fromQuery = splitJwt(loc.search.replace(/^\?/, ''));
    if (fromHash.token === null && fromQuery.token === null) {
      return null;
    }

    var search = fromQuery.token === null ? loc.search : (fromQuery.rest ? '?' + fromQuery.rest : '');
    var fragment = hash;
    if (fromHash.token !== null) {
      fragment = q < 0 ? fromHash.rest : hash.slice(0, q) + (fromHash.rest ? '?' + fromHash.rest : '');
    }
    var history = window.history;
    if (history && typeof history.replaceState === 'function') {
      try {
        history.replaceState(history.state, '', loc.pathname + search + (fragment ? '#' + fragment : ''));
      } catch (e) { /* e.g. sandboxed document: leave the address as it is */ }
    }

    // The fragment is Conductor's default hand-over, so it wins if both are present.
    var token = fromHash.token !== null ? fromHash.token : fromQuery.token;
    return JWT_SHAPE.test(token) ? token : null;
  }

  // Run now, before Angular bootstraps and parses the address (it would otherwise see '#jwt=...' as a
  // route or anchor). A fresh token from a login replaces whatever was stored before.
  var arrived = takeTokenFromLocation();
  if (arrived) {
    writeToken(arrived);
  }

  /* ---- Angular binding -------------------------------------------------------------------------- */

  var angular = window.angular;
  if (!angular || typeof angular.module !== 'function') {
    if (window.console && window.console.warn) {
      window.console.warn('Conductor auth lib: load angular before /user/lib; no Angular modules defined.');
    }
    return;
  }

  var baseUrlValue = initialBaseUrl();

  angular.module('authClient.config', []).value('authClient.config', { debug: true });
  // The original required 'ngStorage' here; we talk to localStorage directly and need no dependency.
  angular.module('authClient.services', []);
  angular.module('authClient', ['authClient.config', 'authClient.services']);

  angular.module('authClient.services')

    // A provider rather than the original plain service: `baseUrl` injects exactly as before
    // (getBaseUrl/setBaseUrl), and `baseUrlProvider` additionally allows setting it in a config block.
    .provider('baseUrl', function () {
      function setBaseUrl(url) {
        baseUrlValue = trimSlashes(url); // avoids '//user/check' when a page configures 'https://host/'
      }
      this.setBaseUrl = setBaseUrl;
      this.$get = function () {
        return {
          setBaseUrl: setBaseUrl,
          getBaseUrl: function () {
            return baseUrlValue;
          }
        };
      };
    })

    .service('authenticate', ['$http', '$location', '$q', '$window', 'baseUrl',
      function ($http, $location, $q, $window, baseUrl) {

        this.getToken = function () {
          return readToken() || undefined; // the original returned $localStorage.jwt: undefined when absent
        };

        this.check = function (next) {
          // A token placed in Angular's $location after load (os-packager's login pop-up posts its query
          // back and the page calls $location.search(query)). Take it and drop it from the address.
          var fromLocation = $location.search().jwt;
          if (fromLocation !== undefined) {
            if (angular.isArray(fromLocation)) {
              fromLocation = fromLocation[0];
            }
            if (typeof fromLocation === 'string' && JWT_SHAPE.test(fromLocation)) {
              writeToken(fromLocation);
            }
            $location.search('jwt', null).replace();
          }

          var token = readToken();
          var params = { next: next };
          if (token) {
            params.jwt = token;
          }
          // No withCredentials: the token travels as `jwt`, and cookies are neither needed nor wanted.
          return $http.get(baseUrl.getBaseUrl() + '/user/check', { params: params, withCredentials: false })
            .then(function (response) {
              var data = response.data || {};
              if (data.authenticated) {
                return { token: token, profile: data.profile };
              }
              // The token is invalid or expired. Forget it, unless another tab or call stored a new one meanwhile.
              if (token && readToken() === token) {
                clearToken();
              }
              return $q.reject(data.providers || {});
            }, function () {
              // The original never settled here, leaving pages waiting forever; keep the token (the server
              // may just be unreachable) and reject like an unknown login state.
              return $q.reject({});
            });
        };

        this.login = function (url, target) {
          if (!SAFE_URL.test(String(url))) {
            if ($window.console && $window.console.warn) {
              $window.console.warn('Conductor auth lib: refusing to open login url', url);
            }
            return undefined;
          }
          return $window.open(url, target);
        };

        this.logout = function () {
          clearToken();
          if ($location.search().jwt !== undefined) {
            $location.search('jwt', null);
          }
        };
      }])

    .service('authorize', ['$http', '$q', 'baseUrl',
      function ($http, $q, baseUrl) {

        this.check = function (token, service) {
          var config = { params: { jwt: token, service: service }, withCredentials: false };
          return $http.get(baseUrl.getBaseUrl() + '/user/authorize', config)
            .then(function (response) {
              return response.data;
            }, function () {
              return $q.reject({});
            });
        };
      }]);
})(window);
