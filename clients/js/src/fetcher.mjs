// ConfigFetcher keeps a client config fresh: conditional GETs with the ETag, the
// last known good config kept through any failure, a refetch every ttl with jitter.

import { DEFAULT_TTL, parseConfig } from './config.mjs';
import { decide, explain } from './decide.mjs';

/** The shortest time between refetches that noteVersion may cause, in ms. */
export const VERSION_REFETCH_GAP_MS = 5000;

/** The retry delay before any config was ever fetched, in ms (before jitter). */
export const FIRST_RETRY_MS = 5000;

export class ConfigFetcher {
  /**
   * @param {object} opts
   * @param {string} opts.url the gateway's /.well-known/shiftgate/client-config
   * @param {Function} [opts.fetch] a WHATWG fetch (default: the global one)
   * @param {() => number} [opts.now] the clock in ms (default: Date.now)
   * @param {() => number} [opts.random] uniform in [0, 1) (default: Math.random)
   * @param {Function} [opts.setTimeout] and opts.clearTimeout: the timer functions
   * @param {object|string} [opts.initial] a last known good config, e.g. from
   *   storage, used until the first fetch succeeds; ignored when it does not parse
   * @param {object} [opts.headers] more request headers
   * @param {(config: object, etag: string) => void} [opts.onUpdate] called with each
   *   new config, e.g. to store it for the next start
   * @param {(error: Error) => void} [opts.onError] called on each failed refresh
   */
  constructor(opts) {
    if (!opts || typeof opts.url !== 'string') throw new TypeError('ConfigFetcher: url is required');
    this.url = opts.url;
    this._fetch = opts.fetch || ((...a) => globalThis.fetch(...a));
    this._now = opts.now || Date.now;
    this._random = opts.random || Math.random;
    this._setTimeout = opts.setTimeout || ((fn, ms) => globalThis.setTimeout(fn, ms));
    this._clearTimeout = opts.clearTimeout || ((t) => globalThis.clearTimeout(t));
    this._headers = opts.headers || {};
    this._onUpdate = opts.onUpdate || (() => {});
    this._onError = opts.onError || (() => {});
    this._config = null;
    this._etag = '';
    this._lastError = null;
    this._fetchedAt = 0;
    this._attemptAt = -Infinity;
    this._retryAfterMs = 0;
    this._inflight = null;
    this._timer = null;
    this._running = false;
    if (opts.initial) {
      try {
        this._config = parseConfig(opts.initial);
      } catch (e) {
        this._lastError = e;
      }
    }
  }

  /** The config in force (the last known good one), or null before any. */
  get config() {
    return this._config;
  }

  /** The ETag of the config in force, '' when unknown. */
  get etag() {
    return this._etag;
  }

  /** The error of the last refresh, null when it succeeded. */
  get lastError() {
    return this._lastError;
  }

  /** When (by the injected clock, ms) the gateway last confirmed the config; 0 never. */
  get fetchedAt() {
    return this._fetchedAt;
  }

  /** explain(config, request) on the config in force. */
  explain(request) {
    return explain(this._config, request);
  }

  /** decide(config, request) on the config in force: a region, or ''. */
  decide(request) {
    return decide(this._config, request);
  }

  /**
   * refresh fetches the config once, conditionally on the ETag. It never rejects: it
   * resolves to 'updated', 'not_modified' or 'error', and on error keeps the config
   * in force. Calls made while one is under way share it.
   * @returns {Promise<'updated'|'not_modified'|'error'>}
   */
  refresh() {
    if (!this._inflight) {
      this._inflight = this._refresh().finally(() => {
        this._inflight = null;
      });
    }
    return this._inflight;
  }

  async _refresh() {
    this._attemptAt = this._now();
    this._retryAfterMs = 0;
    try {
      const headers = { Accept: 'application/json', ...this._headers };
      if (this._etag && this._config) headers['If-None-Match'] = this._etag;
      const res = await this._fetch(this.url, { method: 'GET', headers, cache: 'no-store' });
      if (res.status === 304 && this._config) {
        this._ok();
        return 'not_modified';
      }
      if (res.status !== 200) {
        this._retryAfterMs = retryAfter(res.headers && res.headers.get('retry-after'), this._now());
        throw new Error(`client config: HTTP ${res.status}`);
      }
      const config = parseConfig(await res.text());
      this._config = config;
      this._etag = (res.headers && res.headers.get('etag')) || '';
      this._ok();
      this._onUpdate(config, this._etag);
      return 'updated';
    } catch (e) {
      this._lastError = e;
      this._onError(e);
      return 'error';
    }
  }

  _ok() {
    this._lastError = null;
    this._fetchedAt = this._now();
  }

  /**
   * nextDelay is the wait before the next refresh, in ms: the config's ttl (60 s when
   * 0, at least 1 s) ± 10 % jitter, so that clients do not call in step; 5 s ± 10 %
   * while no config was ever fetched; never shorter than a Retry-After.
   * @returns {number}
   */
  nextDelay() {
    const ttl = this._config && this._config.ttl > 0 ? this._config.ttl : DEFAULT_TTL;
    let base = Math.max(1000, ttl * 1000);
    if (!this._config) base = Math.min(base, FIRST_RETRY_MS);
    const delay = Math.round(base * (0.9 + 0.2 * this._random()));
    return Math.max(delay, this._retryAfterMs);
  }

  /** start fetches now and then every nextDelay() until stop. Calling it twice is harmless. */
  start() {
    if (this._running) return;
    this._running = true;
    this._cycle();
  }

  /** stop cancels the next refresh; one under way completes but schedules nothing. */
  stop() {
    this._running = false;
    if (this._timer !== null) this._clearTimeout(this._timer);
    this._timer = null;
  }

  /**
   * noteVersion takes the gateway's X-Shift-Config-Version from any response: when it
   * differs from the config in force, the config is refetched now, at most once per
   * VERSION_REFETCH_GAP_MS (fleets may answer with two versions while one rolls out).
   * @param {string|null} version
   */
  noteVersion(version) {
    if (!this._running || !version || (this._config && version === this._config.version)) return;
    if (this._now() - this._attemptAt < VERSION_REFETCH_GAP_MS) return;
    if (this._timer !== null) this._clearTimeout(this._timer);
    this._timer = null;
    this._cycle();
  }

  _cycle() {
    this.refresh().then(() => {
      if (!this._running) return;
      if (this._timer !== null) this._clearTimeout(this._timer);
      this._timer = this._setTimeout(() => {
        this._timer = null;
        this._cycle();
      }, this.nextDelay());
      // In Node, a pending refresh does not keep the process alive.
      if (this._timer && typeof this._timer.unref === 'function') this._timer.unref();
    });
  }
}

// retryAfter reads Retry-After (seconds or an HTTP date) into ms from now; 0 if none.
function retryAfter(v, now) {
  if (!v) return 0;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? 0 : Math.max(0, t - now);
}
