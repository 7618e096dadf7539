// Every vector in ../vectors.json (what `shiftgate vectors` prints) must hold here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ALGORITHM, ConfigError, bucket, explain, decide, ipKey, parseConfig, threshold, utf8, xxh64,
} from '../shiftgate.mjs';
import { utf8Fallback } from '../src/xxh64.mjs';

const doc = JSON.parse(readFileSync(new URL('../../vectors.json', import.meta.url), 'utf8'));
const hex = (h) => h.toString(16).padStart(16, '0');

test('document header', () => {
  assert.equal(doc.format, 'shiftgate-client-vectors');
  assert.equal(doc.version, '1');
  assert.equal(doc.algorithm, ALGORITHM);
});

test('xxh64 vectors', () => {
  assert.ok(doc.xxh64.length > 50);
  for (const v of doc.xxh64) {
    assert.equal(hex(xxh64(utf8(v.input), BigInt(v.seed))), v.hash, `${JSON.stringify(v.input)} seed ${v.seed}`);
    assert.equal(hex(xxh64(utf8Fallback(v.input), BigInt(v.seed))), v.hash, `fallback ${JSON.stringify(v.input)}`);
  }
});

test('bucket vectors', () => {
  const contract = doc.buckets.filter((v) => v.group === 'contract');
  assert.deepEqual(contract.map((v) => [v.key, v.bucket]), [
    ['42', 2799], ['u-1001', 7356], ['u-qa-1', 900], ['d-7f3a', 7630], ['203.0.113.7', 3466], ['2001:db8::1', 5774],
  ]);
  for (const v of doc.buckets) {
    const name = `${v.group}: ${JSON.stringify(v.salt)} / ${JSON.stringify(v.key).slice(0, 60)}`;
    assert.equal(hex(xxh64(utf8(`${v.salt}\u0000${v.key}`))), v.hash, name);
    assert.equal(bucket(v.salt, v.key), v.bucket, name);
  }
});

test('threshold edge vectors', () => {
  for (const v of doc.edges) {
    assert.equal(bucket(v.salt, v.key), v.bucket, v.key);
    assert.equal(threshold(v.percent), v.threshold, `percent ${v.percent}`);
    assert.equal(v.bucket < threshold(v.percent), v.to, `${v.key} at ${v.percent}`);
  }
});

test('ip vectors', () => {
  for (const v of doc.ips) {
    assert.equal(ipKey(v.input), v.key, JSON.stringify(v.input));
  }
});

const fromExpect = (e) => ({
  route: e.route, region: e.region, url: e.url, bucket: e.bucket, threshold: e.threshold,
  keySource: e.key_source, reason: e.reason, cutoff: e.cutoff, write: e.write,
});

for (const cv of doc.configs) {
  test(`config ${cv.name}`, () => {
    const parsed = parseConfig(JSON.stringify(cv.config));
    for (const c of cv.cases) {
      const want = fromExpect(c.expect);
      assert.deepEqual(explain(parsed, c.request), want, c.name);
      // The gateway's JSON as parsed, without parseConfig, decides the same.
      assert.deepEqual(explain(cv.config, c.request), want, `${c.name} (raw)`);
      assert.equal(decide(parsed, c.request), want.region, c.name);
    }
  });
}

test('invalid configs are refused', () => {
  assert.ok(doc.invalid_configs.length > 10);
  for (const v of doc.invalid_configs) {
    assert.throws(() => parseConfig(JSON.stringify(v.config)), ConfigError, v.name);
  }
});
