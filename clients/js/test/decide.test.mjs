import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConfigError, bucket, clientHeader, decide, explain, parseConfig, utf8, xxh64,
} from '../shiftgate.mjs';
import { utf8Fallback } from '../src/xxh64.mjs';

const config = parseConfig({
  version: '9',
  algorithm: 'xxh64-salt0-mod10000',
  regions: { idc: { public_url: 'https://idc.example.com' }, cloud: { public_url: 'https://cloud.example.com' } },
  routes: [{
    name: 'feed', match: { path_prefix: '/api/feed' }, from: 'idc', to: 'cloud', salt: 'cutover-2026',
    keys: ['header:X-User-Id', 'cookie:uid', 'query:u', 'ip'], percent: 28, write_percent: 9.01,
  }],
});

test('known XXH64 values', () => {
  assert.equal(xxh64(new Uint8Array(0)), 0xef46db3751d8e999n);
  assert.equal(xxh64(utf8('abc')), 0x44bc2cf5ad770999n);
  assert.equal(xxh64(utf8('abc'), 0), 0x44bc2cf5ad770999n);
});

test('lone surrogates encode as U+FFFD, with or without TextEncoder', () => {
  for (const s of ['\ud800', 'a\udc00b', '\ud83d', '\ude00\ud83d']) {
    assert.deepEqual(utf8Fallback(s), utf8(s), JSON.stringify(s));
  }
  assert.deepEqual([...utf8('\ud800')], [0xef, 0xbf, 0xbd]);
  assert.equal(bucket('s', '\ud800'), bucket('s', '\ufffd'));
});

test('utf8Fallback equals TextEncoder on random strings', () => {
  let seed = 1;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  for (let n = 0; n < 2000; n++) {
    let s = '';
    const len = Math.floor(rnd() * 20);
    for (let i = 0; i < len; i++) s += String.fromCharCode(Math.floor(rnd() * 0x10000));
    assert.deepEqual(utf8Fallback(s), utf8(s));
  }
});

test('header lookup: any case, Headers objects, arrays', () => {
  const d = (headers) => explain(config, { path: '/api/feed', headers }).bucket;
  assert.equal(d({ 'x-user-id': '42' }), 2799);
  assert.equal(d({ 'X-USER-ID': ['42', 'u-1001'] }), 2799);
  assert.equal(d(new Headers({ 'x-user-id': '42' })), 2799);
  assert.equal(d({ 'X-User-Id': '' }), -1);
});

test('spaces and tabs around header and cookie values are not the key, as at the gateway', () => {
  const e = (req) => explain(config, { path: '/api/feed', ...req });
  for (const v of [' 42', '42 ', '\t42\t', ' \t 42 \t ']) {
    assert.equal(e({ headers: { 'X-User-Id': v } }).bucket, 2799, JSON.stringify(v));
    assert.equal(e({ headers: { 'x-user-id': [v] } }).bucket, 2799, JSON.stringify(v));
    assert.equal(e({ cookies: { uid: v } }).bucket, 2799, JSON.stringify(v));
    assert.equal(e({ cookies: new Map([['uid', v]]) }).bucket, 2799, JSON.stringify(v));
  }
  assert.equal(e({ headers: new Headers({ 'X-User-Id': ' 42\t' }) }).bucket, 2799);
  assert.equal(e({ headers: { 'X-User-Id': ' a b\t' } }).bucket, bucket('cutover-2026', 'a b'));
  // A value of only whitespace is empty: the next source applies.
  const blank = e({ headers: { 'X-User-Id': ' \t ', 'x-user-id': 'u-qa-1' } });
  assert.deepEqual([blank.keySource, blank.bucket], ['header:X-User-Id', 900]);
  const next = e({ headers: { 'X-User-Id': '\t' }, cookies: { uid: '  ' }, query: { u: '42' } });
  assert.deepEqual([next.keySource, next.bucket], ['query:u', 2799]);
  // Decoded query values are hashed as they are; only SP and HTAB are trimmed.
  assert.equal(e({ query: new URLSearchParams('u=+42+') }).bucket, bucket('cutover-2026', ' 42 '));
  assert.equal(e({ headers: { 'X-User-Id': '\u00a042' } }).bucket, bucket('cutover-2026', '\u00a042'));
  assert.equal(e({ headers: { 'X-User-Id': '42\n' } }).bucket, bucket('cutover-2026', '42\n'));
});

test('query and cookies from objects with get()', () => {
  const e = explain(config, { path: '/api/feed', query: new URLSearchParams('u=u-qa-1') });
  assert.equal(e.keySource, 'query:u');
  assert.equal(e.bucket, 900);
  const m = explain(config, { path: '/api/feed', cookies: new Map([['uid', 'd-7f3a']]) });
  assert.equal(m.keySource, 'cookie:uid');
  assert.equal(m.bucket, 7630);
});

test('inherited properties are not keys', () => {
  const cfg = parseConfig({
    algorithm: 'xxh64-salt0-mod10000',
    routes: [{ name: 'r', from: 'a', to: 'b', keys: ['cookie:constructor', 'query:toString', 'header:__proto__'], percent: 50 }],
  });
  assert.equal(explain(cfg, { cookies: {}, query: {}, headers: {} }).reason, 'no_key');
});

test('write threshold, methods in any case', () => {
  assert.deepEqual(explain(config, { method: 'post', path: '/api/feed', headers: { 'X-User-Id': 'u-qa-1' } }), {
    route: 'feed', region: 'cloud', url: 'https://cloud.example.com', bucket: 900, threshold: 901,
    keySource: 'header:X-User-Id', reason: 'split', cutoff: false, write: true,
  });
  assert.equal(explain(config, { method: 'Get', path: '/api/feed' }).write, false);
});

test('no config, unsupported algorithm, no route', () => {
  assert.equal(explain(null, {}).reason, 'no_config');
  assert.equal(decide(null, {}), '');
  assert.equal(explain({ algorithm: 'xxh3', routes: [] }, {}).reason, 'unsupported');
  assert.equal(explain(config, { path: '/other' }).reason, 'no_route');
  assert.equal(explain(config, undefined).reason, 'no_route');
});

test('clientHeader', () => {
  const d = explain(config, { path: '/api/feed', headers: { 'X-User-Id': '42' } });
  assert.equal(clientHeader(config, d), 'cloud;v=9');
  assert.equal(clientHeader(config, explain(config, { path: '/x' })), '');
});

test('parseConfig defaults and errors', () => {
  const c = parseConfig('{"algorithm":"xxh64-salt0-mod10000","routes":[{"name":"r","from":"a","to":"b","percent":12.5,"match":{"path_prefix":""}}]}');
  assert.equal(c.routes[0].write_percent, 12.5);
  assert.equal(c.routes[0].match.path_prefix, '/');
  assert.equal(c.ttl, 0);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.routes[0]));
  const err = (input) => {
    try {
      parseConfig(input);
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e;
    }
    assert.fail(`accepted ${JSON.stringify(input)}`);
  };
  assert.equal(err('{"algorithm":"fnv"}').unsupported, true);
  assert.equal(err('{').unsupported, false);
  assert.match(err({ algorithm: 'xxh64-salt0-mod10000', routes: [{ name: 'r', from: 'a', to: 'b', percent: 0.001 }] }).message,
    /routes\[0\]\.percent: want 0..100 with at most two decimals/);
  assert.match(err({ algorithm: 'xxh64-salt0-mod10000', routes: [{ name: 'r', from: 'a', to: 'b', percent: 5, write_percent: 6 }] }).message,
    /routes\[0\]\.write_percent: 6 is above percent 5/);
});
