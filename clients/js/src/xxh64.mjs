// XXH64 over bytes with BigInt, and UTF-8 encoding that matches Go's and Java's.
//
// BigInt keeps every step exact (a JS number holds 53 bits); it needs ES2020, which
// current browsers, Node and React Native (Hermes) have.

const MASK = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

function rotl(x, r) {
  return ((x << r) | (x >> (64n - r))) & MASK;
}

function round(acc, lane) {
  acc = (acc + lane * P2) & MASK;
  return (rotl(acc, 31n) * P1) & MASK;
}

function merge(h, v) {
  h ^= round(0n, v);
  return (h * P1 + P4) & MASK;
}

function u32(b, i) {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

function u64(b, i) {
  return BigInt(u32(b, i)) | (BigInt(u32(b, i + 4)) << 32n);
}

/**
 * xxh64 returns the XXH64 hash of bytes with seed, as an unsigned 64-bit BigInt.
 * @param {Uint8Array} bytes
 * @param {bigint|number} [seed=0n] a BigInt, or a safe non-negative integer
 * @returns {bigint}
 */
export function xxh64(bytes, seed = 0n) {
  const s = BigInt.asUintN(64, BigInt(seed));
  const n = bytes.length;
  let i = 0;
  let h;
  if (n >= 32) {
    let v1 = (s + P1 + P2) & MASK;
    let v2 = (s + P2) & MASK;
    let v3 = s;
    let v4 = (s - P1) & MASK;
    for (; i + 32 <= n; i += 32) {
      v1 = round(v1, u64(bytes, i));
      v2 = round(v2, u64(bytes, i + 8));
      v3 = round(v3, u64(bytes, i + 16));
      v4 = round(v4, u64(bytes, i + 24));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = (s + P5) & MASK;
  }
  h = (h + BigInt(n)) & MASK;
  for (; i + 8 <= n; i += 8) {
    h ^= round(0n, u64(bytes, i));
    h = (rotl(h, 27n) * P1 + P4) & MASK;
  }
  if (i + 4 <= n) {
    h ^= (BigInt(u32(bytes, i)) * P1) & MASK;
    h = (rotl(h, 23n) * P2 + P3) & MASK;
    i += 4;
  }
  for (; i < n; i++) {
    h ^= (BigInt(bytes[i]) * P5) & MASK;
    h = (rotl(h, 11n) * P1) & MASK;
  }
  h ^= h >> 33n;
  h = (h * P2) & MASK;
  h ^= h >> 29n;
  h = (h * P3) & MASK;
  h ^= h >> 32n;
  return h;
}

const encoder = typeof TextEncoder === 'function' ? new TextEncoder() : null;

/**
 * utf8 encodes a string as UTF-8. A lone surrogate becomes U+FFFD (EF BF BD), as
 * TextEncoder, Go and the Java client do.
 * @param {string} s
 * @returns {Uint8Array}
 */
export function utf8(s) {
  return encoder ? encoder.encode(s) : utf8Fallback(s);
}

/**
 * utf8Fallback is utf8 for runtimes without TextEncoder (older React Native).
 * @param {string} s
 * @returns {Uint8Array}
 */
export function utf8Fallback(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    }
    if (c < 0x80) {
      out.push(c);
    } else if (c < 0x800) {
      out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    } else if (c < 0x10000) {
      out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    } else {
      out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
  }
  return Uint8Array.from(out);
}

/** BUCKETS is the number of buckets: percents move in 0.01 % steps. */
export const BUCKETS = 10000;

/**
 * bucket returns key's bucket under salt: xxhash64(salt + "\x00" + key) mod 10000 over
 * the UTF-8 bytes, an integer in 0..9999, the same as the gateway's.
 * @param {string} salt
 * @param {string} key
 * @returns {number}
 */
export function bucket(salt, key) {
  return Number(xxh64(utf8(String(salt) + '\u0000' + String(key))) % 10000n);
}
