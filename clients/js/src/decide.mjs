// The client-side decision: the gateway's route match and split, made in the app.

import { ALGORITHM, parseKey, threshold } from './config.mjs';
import { hexDigit, ipKey } from './ip.mjs';
import { xxh64, utf8 } from './xxh64.mjs';

/**
 * @typedef {object} Request
 * @property {string} [method] compared ASCII case-insensitively; missing is GET
 * @property {string} [host] may carry a port and any case
 * @property {string} [path] the URL path without the query; missing is "/"
 * @property {object} [headers] a plain object (names matched case-insensitively) or
 *   anything with get(name), such as fetch's Headers; spaces and tabs around a value
 *   are not part of it, as on the wire
 * @property {object} [cookies] a plain object or anything with get(name); values
 *   trimmed of spaces and tabs as headers are, and of one pair of enclosing double
 *   quotes, as the gateway reads a Cookie header (a value still holding a quote,
 *   semicolon or backslash counts as absent)
 * @property {object} [query] a plain object or anything with get(name), such as
 *   URLSearchParams
 * @property {string} [ip] the client's address as the gateway sees it, if known
 */

/**
 * @typedef {object} Decision
 * @property {string} route the matched route's name, '' when none matched
 * @property {string} region where the request goes; '' when the client cannot tell
 *   (no config, unsupported algorithm, no route): call the default address
 * @property {string} url the region's public_url, '' when the config has none
 * @property {number} bucket the key's bucket, -1 when no key was hashed
 * @property {number} threshold the basis points the bucket was compared with
 * @property {string} keySource the key source used, '' when none
 * @property {string} reason no_config, unsupported, no_route, rollback, no_key or split
 * @property {boolean} cutoff do not call: serve the local cache (site or route)
 * @property {boolean} write the method is not GET, HEAD or OPTIONS
 */

const own = Object.prototype.hasOwnProperty;

function asciiLower(s) {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

function first(v) {
  if (Array.isArray(v)) v = v[0];
  return typeof v === 'string' ? v : '';
}

// trimOWS drops the spaces and horizontal tabs around a header or cookie value.
// HTTP's optional whitespace is not part of a field value and the gateway's parser
// trims it, so ' 1 ' is the key '1', and a value of only whitespace is empty (the
// next key source applies). Not String.prototype.trim: that also drops line breaks,
// U+00A0 and other Unicode spaces, which the gateway keeps.
function trimOWS(s) {
  let i = 0;
  let j = s.length;
  while (i < j && (s[i] === ' ' || s[i] === '\t')) i++;
  while (j > i && (s[j - 1] === ' ' || s[j - 1] === '\t')) j--;
  return s.slice(i, j);
}

// cookieValue is a cookie's value as the gateway's parser reads it from a Cookie
// header: without the spaces and tabs around it, then without one pair of enclosing
// double quotes (RFC 6265's quoted value; document.cookie keeps them), so '"u-1"'
// and 'u-1' are one key. A value that still holds a double quote, a semicolon or a
// backslash the gateway drops as if the cookie were absent: '' (the next key source
// applies).
function cookieValue(s) {
  let v = trimOWS(s);
  if (v.length > 1 && v[0] === '"' && v[v.length - 1] === '"') v = v.slice(1, -1);
  return /[";\\]/.test(v) ? '' : v;
}

// lookup reads one value as norm reads it; own properties only, so "constructor" is
// not a cookie.
function lookup(m, name, foldCase, norm) {
  const value = (v) => norm(first(v));
  if (m === null || typeof m !== 'object') return '';
  if (typeof m.get === 'function') return value(m.get(name) ?? '');
  if (own.call(m, name)) {
    const v = value(m[name]);
    if (v !== '') return v;
  }
  if (foldCase) {
    const want = asciiLower(name);
    for (const k of Object.keys(m)) {
      const v = value(m[k]);
      if (v !== '' && asciiLower(k) === want) return v;
    }
  }
  return '';
}

function isWrite(method) {
  const m = asciiLower(typeof method === 'string' ? method : '');
  return !(m === '' || m === 'get' || m === 'head' || m === 'options');
}

// stripPort drops ":port" but not the colons of a bracketed IPv6 literal.
function stripPort(host) {
  const i = host.lastIndexOf(':');
  return i >= 0 && host.lastIndexOf(']') < i ? host.slice(0, i) : host;
}

// indexOfBytes is the first index of p in b (arrays of bytes) at or after 0, or -1.
function indexOfBytes(b, p) {
  outer: for (let i = 0; i + p.length <= b.length; i++) {
    for (let j = 0; j < p.length; j++) if (b[i + j] !== p[j]) continue outer;
    return i;
  }
  return -1;
}

function endsWithAt(b, w, p) {
  if (w < p.length) return false;
  for (let j = 0; j < p.length; j++) if (b[w - p.length + j] !== p[j]) return false;
  return true;
}

// removeSegments removes every p from b in one pass (each removal can make another);
// with parent, the segment before each p goes too, a '/' left where it began
// ("/x/../" removed).
function removeSegments(b, p, parent) {
  const n = indexOfBytes(b, p);
  if (n < 0) return b;
  let w = n;
  for (let r = n; r < b.length; r++) {
    b[w++] = b[r];
    while (endsWithAt(b, w, p)) {
      if (!parent) {
        w -= p.length - 1;
        continue;
      }
      let k = w - p.length - 1;
      while (k >= 0 && b[k] !== 47) k--;
      w = Math.max(k, 0);
      b[w++] = 47;
    }
  }
  return b.slice(0, w);
}

// normalizePath is the path as the gateway routes it, as UTF-8 bytes: %XX decoded
// ('+' kept; a '%' without two hex digits kept), then "//", "/./" and "/x/../"
// removed, the gateway's parser's steps in its order, so that "//api/feed",
// "/api/x/../feed" and "/api/%66eed" take the route of "/api/feed".
function normalizePath(path) {
  const src = utf8(path);
  if (src.length === 1 && src[0] === 47) return Array.from(src);
  let b = [];
  if (src.length === 0 || src[0] !== 47) b.push(47);
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c !== 37) {
      b.push(c);
      continue;
    }
    if (i + 3 > src.length) {
      for (; i < src.length; i++) b.push(src[i]);
      break;
    }
    const x1 = hexDigit(src[i + 1]);
    const x2 = hexDigit(src[i + 2]);
    if (x1 < 0 || x2 < 0) {
      b.push(37);
      continue;
    }
    b.push((x1 << 4) | x2);
    i += 2;
  }
  b = removeSegments(b, [47, 47], false);
  if (!b.includes(46)) return b;
  b = removeSegments(b, [47, 46, 47], false);
  b = removeSegments(b, [47, 46, 46, 47], true);
  if (endsWithAt(b, b.length, [47, 46, 46])) {
    let k = b.length - 4;
    while (k >= 0 && b[k] !== 47) k--;
    if (k < 0) return [47];
    b = b.slice(0, k + 1);
  }
  if (endsWithAt(b, b.length, [47, 46])) b = b.slice(0, b.length - 1);
  return b;
}

// match: a route whose host matches beats routes without a host; then the longest
// path prefix (in bytes, as the gateway compares them); on a tie, the first.
function match(routes, host, path) {
  const h = asciiLower(stripPort(host));
  const p = normalizePath(path);
  let best = -1;
  let bestLen = -1;
  let bestHost = false;
  routes.forEach((r, i) => {
    const prefix = utf8((r.match && r.match.path_prefix) || '/');
    if (prefix.length > p.length) return;
    for (let j = 0; j < prefix.length; j++) if (p[j] !== prefix[j]) return;
    const rh = (r.match && r.match.host) || '';
    if (rh !== '') {
      if (asciiLower(rh) !== h) return;
      if (!bestHost || prefix.length > bestLen) {
        best = i;
        bestLen = prefix.length;
        bestHost = true;
      }
    } else if (!bestHost && prefix.length > bestLen) {
      best = i;
      bestLen = prefix.length;
    }
  });
  return best;
}

function findKey(route, req) {
  const keys = route.keys || [];
  for (const k of keys) {
    const parsed = parseKey(k);
    if (!parsed) continue;
    const [kind, name] = parsed;
    let v = '';
    // The gateway trims header and cookie values, not decoded query values.
    if (kind === 'header') v = lookup(req.headers, name, true, trimOWS);
    else if (kind === 'cookie') v = lookup(req.cookies, name, false, cookieValue);
    else if (kind === 'query') v = lookup(req.query, name, false, (x) => x);
    else v = ipKey(req.ip);
    if (v !== '') return [k, v];
  }
  return null;
}

/**
 * explain makes the gateway's decision on the client side and spells it out: the
 * route by host and longest path prefix; rollback sends to `from`; the key is the
 * first present, non-empty source (header and cookie values without surrounding
 * spaces and tabs, cookie values without one pair of enclosing quotes); no key sends to `from`; writes compare with
 * write_percent; bucket < round(percent × 100) goes to `to`. It takes a config from
 * parseConfig or the gateway's JSON as parsed; it never throws for a request.
 * @param {object|null} config
 * @param {Request} request
 * @returns {Decision}
 */
export function explain(config, request) {
  const req = request || {};
  const d = { route: '', region: '', url: '', bucket: -1, threshold: 0, keySource: '', reason: 'no_config', cutoff: false, write: false };
  if (!config) return d;
  d.cutoff = config.cutoff === true;
  if (config.algorithm !== ALGORITHM) {
    d.reason = 'unsupported';
    return d;
  }
  d.write = isWrite(req.method);
  const routes = Array.isArray(config.routes) ? config.routes : [];
  const idx = match(routes, typeof req.host === 'string' ? req.host : '', typeof req.path === 'string' && req.path !== '' ? req.path : '/');
  if (idx < 0) {
    d.reason = 'no_route';
    return d;
  }
  const r = routes[idx];
  d.route = typeof r.name === 'string' ? r.name : '';
  d.cutoff = d.cutoff || r.cutoff === true;
  const percent = r.percent ?? 0;
  d.threshold = threshold(d.write ? r.write_percent ?? percent : percent);
  const at = (region, reason) => {
    d.region = region;
    d.reason = reason;
    const reg = config.regions && own.call(config.regions, region) ? config.regions[region] : null;
    d.url = (reg && reg.public_url) || '';
    return d;
  };
  if (config.rollback === true) return at(r.from, 'rollback');
  const key = findKey(r, req);
  if (!key) return at(r.from, 'no_key');
  d.keySource = key[0];
  d.bucket = Number(xxh64(utf8((r.salt || '') + '\u0000' + key[1])) % 10000n);
  return at(d.bucket < d.threshold ? r.to : r.from, 'split');
}

/**
 * decide returns the region a request goes to, as the gateway would choose it; ''
 * when the client cannot tell (then call the default address and let the gateway
 * decide). Use explain for the URL, the cutoff and the reason.
 * @param {object|null} config
 * @param {Request} request
 * @returns {string}
 */
export function decide(config, request) {
  return explain(config, request).region;
}

/**
 * clientHeader is the X-Shift-Client value that tells the gateway what the client
 * decided: "REGION;v=VERSION", or '' when the decision has no region.
 * @param {object} config
 * @param {Decision} decision
 * @returns {string}
 */
export function clientHeader(config, decision) {
  if (!config || !decision || !decision.region) return '';
  return `${decision.region};v=${config.version ?? ''}`;
}
