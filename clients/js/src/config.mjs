// The client config as the gateway publishes it at /.well-known/shiftgate/client-config,
// read and checked with the same rules as the Go reference (routing/clientcfg).

/** ALGORITHM is the only split algorithm this client implements. */
export const ALGORITHM = 'xxh64-salt0-mod10000';

/** DEFAULT_TTL is the refetch interval in seconds when a config's ttl is 0. */
export const DEFAULT_TTL = 60;

/** ConfigError is thrown by parseConfig; `unsupported` is set for another algorithm. */
export class ConfigError extends Error {
  constructor(message, unsupported = false) {
    super(message);
    this.name = 'ConfigError';
    this.unsupported = unsupported;
  }
}

/**
 * threshold returns round(percent × 100) clamped to 0..10000: a request goes to the
 * route's `to` region iff its bucket is below it.
 * @param {number} percent
 * @returns {number}
 */
export function threshold(percent) {
  const t = Math.round(percent * 100);
  if (t >= 10000) return 10000;
  return t > 0 ? t : 0;
}

// validPercent: 0..100 with at most two decimals, judged on percent × 100 as a double,
// exactly as Go and Java judge it.
function validPercent(p) {
  if (!(p >= 0 && p <= 100)) return false;
  const x = p * 100;
  return Math.abs(x - Math.round(x)) <= 1e-6;
}

/**
 * parseKey reads "header:NAME", "cookie:NAME", "query:NAME" or "ip" into
 * [kind, name], or null.
 * @param {string} s
 */
export function parseKey(s) {
  if (s === 'ip') return ['ip', ''];
  const i = typeof s === 'string' ? s.indexOf(':') : -1;
  if (i < 0 || i === s.length - 1) return null;
  const kind = s.slice(0, i);
  if (kind !== 'header' && kind !== 'cookie' && kind !== 'query') return null;
  return [kind, s.slice(i + 1)];
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const absent = (v) => v === undefined || v === null;

function str(v, path) {
  if (absent(v)) return '';
  if (typeof v !== 'string') throw new ConfigError(`${path}: want a string`);
  return v;
}

function bool(v, path) {
  if (absent(v)) return false;
  if (typeof v !== 'boolean') throw new ConfigError(`${path}: want true or false`);
  return v;
}

function num(v, path) {
  if (absent(v)) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${path}: want a number`);
  return v;
}

function obj(v, path) {
  if (absent(v)) return {};
  if (!isObject(v)) throw new ConfigError(`${path}: want an object`);
  return v;
}

function list(v, path) {
  if (absent(v)) return [];
  if (!Array.isArray(v)) throw new ConfigError(`${path}: want a list`);
  return v;
}

/**
 * parseConfig reads a client config (JSON text or the parsed object) and checks it.
 * It returns a new, frozen config in the wire's field names, with write_percent
 * defaulted to percent and an empty path_prefix made "/". Unknown fields are
 * dropped, so a newer gateway may add fields. It throws ConfigError.
 * @param {string|object} input
 */
export function parseConfig(input) {
  let doc = input;
  if (typeof input === 'string') {
    try {
      doc = JSON.parse(input);
    } catch (e) {
      throw new ConfigError(`not JSON: ${e.message}`);
    }
  }
  if (!isObject(doc)) throw new ConfigError('want a JSON object');
  const c = {
    version: str(doc.version, 'version'),
    algorithm: str(doc.algorithm, 'algorithm'),
    ttl: num(doc.ttl, 'ttl'),
    rollback: bool(doc.rollback, 'rollback'),
    cutoff: bool(doc.cutoff, 'cutoff'),
    regions: {},
    routes: [],
  };
  if (!Number.isInteger(c.ttl)) throw new ConfigError('ttl: want an integer');
  for (const [name, r] of Object.entries(obj(doc.regions, 'regions'))) {
    c.regions[name] = Object.freeze({ public_url: str(obj(r, `regions.${name}`).public_url, `regions.${name}.public_url`) });
  }
  list(doc.routes, 'routes').forEach((r, i) => {
    const p = `routes[${i}]`;
    const o = obj(r, p);
    const m = obj(o.match, `${p}.match`);
    const percent = num(o.percent, `${p}.percent`);
    c.routes.push({
      name: str(o.name, `${p}.name`),
      match: Object.freeze({ host: str(m.host, `${p}.match.host`), path_prefix: str(m.path_prefix, `${p}.match.path_prefix`) || '/' }),
      from: str(o.from, `${p}.from`),
      to: str(o.to, `${p}.to`),
      salt: str(o.salt, `${p}.salt`),
      keys: Object.freeze(list(o.keys, `${p}.keys`).map((k, j) => str(k, `${p}.keys[${j}]`))),
      percent,
      write_percent: absent(o.write_percent) ? percent : num(o.write_percent, `${p}.write_percent`),
      cutoff: bool(o.cutoff, `${p}.cutoff`),
    });
  });
  validate(c);
  c.routes.forEach(Object.freeze);
  Object.freeze(c.routes);
  Object.freeze(c.regions);
  return Object.freeze(c);
}

// validate applies the Go reference's checks in its order.
function validate(c) {
  if (c.algorithm !== ALGORITHM) {
    throw new ConfigError(`unsupported algorithm ${JSON.stringify(c.algorithm)} (want ${JSON.stringify(ALGORITHM)})`, true);
  }
  if (c.ttl < 0) throw new ConfigError(`ttl: want >= 0, got ${c.ttl}`);
  c.routes.forEach((r, i) => {
    const p = `routes[${i}]`;
    if (r.name === '') throw new ConfigError(`${p}.name: must not be empty`);
    if (r.from === '') throw new ConfigError(`${p}.from: must not be empty`);
    if (r.to === '') throw new ConfigError(`${p}.to: must not be empty`);
    if (!r.match.path_prefix.startsWith('/')) throw new ConfigError(`${p}.match.path_prefix: must start with /`);
    if (!validPercent(r.percent)) throw new ConfigError(`${p}.percent: want 0..100 with at most two decimals, got ${r.percent}`);
    if (!validPercent(r.write_percent)) throw new ConfigError(`${p}.write_percent: want 0..100 with at most two decimals, got ${r.write_percent}`);
    if (threshold(r.write_percent) > threshold(r.percent)) throw new ConfigError(`${p}.write_percent: ${r.write_percent} is above percent ${r.percent}`);
    r.keys.forEach((k, j) => {
      if (!parseKey(k)) throw new ConfigError(`${p}.keys[${j}]: want header:NAME, cookie:NAME, query:NAME or ip, got ${JSON.stringify(k)}`);
    });
  });
}
