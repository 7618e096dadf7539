// ConfigFetcher with an injected fetch, clock, random source and timers: no test
// waits for real time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigFetcher } from '../shiftgate.mjs';

const cfg = (version, ttl = 30, extra = {}) => JSON.stringify({
  version, algorithm: 'xxh64-salt0-mod10000', ttl,
  regions: { a: { public_url: 'https://a.example.com' }, b: { public_url: 'https://b.example.com' } },
  routes: [{ name: 'r', from: 'a', to: 'b', salt: 's', keys: ['header:X-User-Id'], percent: 100 }],
  ...extra,
});

// harness scripts the gateway's answers and records what the fetcher asked.
function harness(answers, opts = {}) {
  const h = { requests: [], timers: [], clock: 1_000_000, updates: [], errors: [] };
  const fetch = async (url, init) => {
    h.requests.push({ url, headers: { ...init.headers } });
    const a = answers.shift();
    if (!a) throw new Error('no scripted answer');
    if (a instanceof Error) throw a;
    const headers = new Map(Object.entries(a.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
    return { status: a.status, headers: { get: (n) => headers.get(n.toLowerCase()) ?? null }, text: async () => a.body ?? '' };
  };
  h.fetcher = new ConfigFetcher({
    url: 'https://gw.example.com/.well-known/shiftgate/client-config',
    fetch,
    now: () => h.clock,
    random: () => opts.random ?? 0.5,
    setTimeout: (fn, ms) => {
      const t = { fn, ms, cleared: false };
      h.timers.push(t);
      return t;
    },
    clearTimeout: (t) => {
      t.cleared = true;
    },
    onUpdate: (c, etag) => h.updates.push([c.version, etag]),
    onError: (e) => h.errors.push(e.message),
    initial: opts.initial,
  });
  // fire runs the pending timer and waits for the refresh it starts.
  h.fire = async () => {
    const t = h.timers.filter((x) => !x.cleared && !x.fired).at(-1);
    assert.ok(t, 'a timer is pending');
    t.fired = true;
    t.fn();
    await settle();
  };
  return h;
}

const settle = () => new Promise((r) => setImmediate(r));

test('ETag, 304, last known good through errors', async () => {
  const h = harness([
    { status: 200, body: cfg('1'), headers: { ETag: '"e1"' } },
    { status: 304 },
    { status: 500, body: 'boom' },
    new Error('network down'),
    { status: 200, body: '{"algorithm":"xxh64-salt0-mod10000","routes":[{"name":"r"}]}', headers: { ETag: '"bad"' } },
    { status: 200, body: cfg('1', 30, { algorithm: 'xxh3' }), headers: { ETag: '"x"' } },
    { status: 200, body: cfg('2', 10), headers: { ETag: '"e2"' } },
  ]);
  const f = h.fetcher;
  assert.equal(await f.refresh(), 'updated');
  assert.equal(h.requests[0].headers['If-None-Match'], undefined);
  assert.equal(f.config.version, '1');
  assert.equal(f.etag, '"e1"');
  assert.equal(f.fetchedAt, 1_000_000);

  h.clock += 30_000;
  assert.equal(await f.refresh(), 'not_modified');
  assert.equal(h.requests[1].headers['If-None-Match'], '"e1"');
  assert.equal(f.fetchedAt, 1_030_000);

  for (const want of ['HTTP 500', 'network down', 'routes[0].from', 'unsupported algorithm']) {
    assert.equal(await f.refresh(), 'error');
    assert.match(f.lastError.message, new RegExp(want.replace(/[[\]]/g, '\\$&')));
    assert.equal(f.config.version, '1', 'the last known good config stays');
    assert.equal(f.etag, '"e1"');
    assert.equal(f.decide({ headers: { 'X-User-Id': 'u' } }), 'b');
  }
  assert.equal(h.requests.at(-1).headers['If-None-Match'], '"e1"');

  assert.equal(await f.refresh(), 'updated');
  assert.equal(f.config.version, '2');
  assert.equal(f.lastError, null);
  assert.deepEqual(h.updates, [['1', '"e1"'], ['2', '"e2"']]);
  assert.equal(h.errors.length, 4);
});

test('a 304 without a config is an error', async () => {
  const h = harness([{ status: 304 }]);
  assert.equal(await h.fetcher.refresh(), 'error');
  assert.equal(h.fetcher.config, null);
});

test('concurrent refreshes share one request', async () => {
  const h = harness([{ status: 200, body: cfg('1') }]);
  const [a, b] = await Promise.all([h.fetcher.refresh(), h.fetcher.refresh()]);
  assert.deepEqual([a, b], ['updated', 'updated']);
  assert.equal(h.requests.length, 1);
});

test('refetch every ttl with ±10 % jitter', async () => {
  for (const [random, want] of [[0, 27_000], [0.5, 30_000], [0.999999, 33_000]]) {
    const h = harness([{ status: 200, body: cfg('1', 30) }, { status: 304 }], { random });
    h.fetcher.start();
    await settle();
    assert.equal(h.requests.length, 1);
    assert.equal(h.timers.length, 1);
    assert.equal(h.timers[0].ms, want, `random ${random}`);
    await h.fire();
    assert.equal(h.requests.length, 2);
    assert.equal(h.timers.length, 2);
    h.fetcher.stop();
    assert.ok(h.timers[1].cleared);
  }
});

test('ttl 0 means 60 s; retry soon before any config; Retry-After is honoured', async () => {
  const h = harness([
    new Error('offline'),
    { status: 503, headers: { 'Retry-After': '120' } },
    { status: 200, body: cfg('1', 0) },
  ]);
  h.fetcher.start();
  await settle();
  assert.equal(h.timers.at(-1).ms, 5000);
  await h.fire();
  assert.equal(h.timers.at(-1).ms, 120_000);
  await h.fire();
  assert.equal(h.fetcher.config.version, '1');
  assert.equal(h.timers.at(-1).ms, 60_000);
  h.fetcher.stop();
});

test('an initial config serves until the first fetch, and survives its failure', async () => {
  const h = harness([{ status: 502 }], { initial: cfg('0') });
  assert.equal(h.fetcher.config.version, '0');
  assert.equal(await h.fetcher.refresh(), 'error');
  assert.equal(h.fetcher.config.version, '0');
  assert.equal(h.requests[0].headers['If-None-Match'], undefined, 'no ETag is known for an initial config');
});

test('noteVersion refetches on a new version, at most every 5 s', async () => {
  const h = harness([{ status: 200, body: cfg('1'), headers: { ETag: '"e1"' } }, { status: 200, body: cfg('2'), headers: { ETag: '"e2"' } }]);
  h.fetcher.noteVersion('2');
  assert.equal(h.requests.length, 0, 'not before start');
  h.fetcher.start();
  await settle();
  h.fetcher.noteVersion('1');
  h.clock += 4_999;
  h.fetcher.noteVersion('2');
  await settle();
  assert.equal(h.requests.length, 1, 'same version, or too soon');
  h.clock += 1;
  h.fetcher.noteVersion('2');
  await settle();
  assert.equal(h.requests.length, 2);
  assert.equal(h.fetcher.config.version, '2');
  assert.ok(h.timers[0].cleared, 'the scheduled refresh was replaced');
  assert.equal(h.timers.filter((t) => !t.cleared).length, 1);
  h.fetcher.stop();
});

test('stop during a refresh schedules nothing', async () => {
  const h = harness([{ status: 200, body: cfg('1') }]);
  h.fetcher.start();
  h.fetcher.stop();
  await settle();
  assert.equal(h.fetcher.config.version, '1');
  assert.equal(h.timers.length, 0);
});
