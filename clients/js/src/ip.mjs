// The ip key source: an address as Go's net/netip parses and prints it, with an
// IPv4-mapped IPv6 address unmapped, because that is the string the gateway hashes.

/**
 * ipKey returns the key the gateway hashes for an address: "2001:DB8:0::1" gives
 * "2001:db8::1", "::ffff:1.2.3.4" gives "1.2.3.4". It returns '' when s is not an
 * address (net/netip's rules: no leading zeros in IPv4, no brackets, no port).
 * @param {string} s
 * @returns {string}
 */
export function ipKey(s) {
  if (typeof s !== 'string') return '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '.') {
      const f = parseV4(s, 0, s.length);
      return f ? f.join('.') : '';
    }
    if (c === ':') {
      const a = parseV6(s);
      return a ? formatV6(a.ip, a.zone) : '';
    }
    if (c === '%') return '';
  }
  return '';
}

// parseV4 reads s[off:end] as a dotted quad; null when it is not one.
function parseV4(s, off, end) {
  const fields = [];
  let val = 0;
  let digits = 0;
  for (let i = off; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && val === 0) return null; // leading zero
      val = val * 10 + (c - 48);
      digits++;
      if (val > 255) return null;
    } else if (c === 46) {
      if (i === off || i === end - 1 || s.charCodeAt(i - 1) === 46) return null;
      if (fields.length === 3) return null;
      fields.push(val);
      val = 0;
      digits = 0;
    } else {
      return null;
    }
  }
  if (fields.length < 3) return null;
  fields.push(val);
  return fields;
}

// hexDigit is the value of the hex digit with char code c, -1 for another.
export function hexDigit(c) {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

// parseV6 follows net/netip's parseIPv6 step by step; null when s is not an address.
function parseV6(input) {
  let s = input;
  let zone = '';
  const pct = s.indexOf('%');
  if (pct >= 0) {
    zone = s.slice(pct + 1);
    s = s.slice(0, pct);
    if (zone === '') return null;
  }
  const ip = new Uint8Array(16);
  let ellipsis = -1;
  let p = 0;
  if (s.length >= 2 && s[0] === ':' && s[1] === ':') {
    ellipsis = 0;
    p = 2;
    if (p === s.length) return { ip, zone };
  }
  let i = 0;
  while (i < 16) {
    let off = 0;
    let acc = 0;
    for (; p + off < s.length; off++) {
      const d = hexDigit(s.charCodeAt(p + off));
      if (d < 0) break;
      acc = acc * 16 + d;
      if (off > 3) return null; // more than four digits
      if (acc > 0xffff) return null;
    }
    if (off === 0) return null;
    if (p + off < s.length && s[p + off] === '.') {
      // An embedded IPv4 address must end the address, in the last 32 bits.
      if (ellipsis < 0 && i !== 12) return null;
      if (i + 4 > 16) return null;
      const f = parseV4(s, p, s.length);
      if (!f) return null;
      ip.set(f, i);
      p = s.length;
      i += 4;
      break;
    }
    ip[i] = acc >> 8;
    ip[i + 1] = acc & 0xff;
    i += 2;
    p += off;
    if (p === s.length) break;
    if (s[p] !== ':') return null;
    if (p + 1 === s.length) return null; // a colon must be followed by more
    p++;
    if (s[p] === ':') {
      if (ellipsis >= 0) return null; // a second "::"
      ellipsis = i;
      p++;
      if (p === s.length) break;
    }
  }
  if (p !== s.length) return null;
  if (i < 16) {
    if (ellipsis < 0) return null;
    const n = 16 - i;
    for (let j = i - 1; j >= ellipsis; j--) ip[j + n] = ip[j];
    ip.fill(0, ellipsis, ellipsis + n);
  } else if (ellipsis >= 0) {
    return null; // "::" must stand for at least one group
  }
  return { ip, zone };
}

// formatV6 prints as net/netip does after Unmap: a mapped address as IPv4 without
// its zone; otherwise lower-case hex, the longest run of two or more zero groups
// (the leftmost of equals) as "::", and the zone.
function formatV6(ip, zone) {
  let mapped = ip[10] === 0xff && ip[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) mapped = ip[i] === 0;
  if (mapped) return `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
  const group = (g) => (ip[2 * g] << 8) | ip[2 * g + 1];
  let zs = -1;
  let ze = -1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && group(j) === 0) j++;
    if (j - i >= 2 && j - i > ze - zs) {
      zs = i;
      ze = j;
    }
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === zs) {
      out += '::';
      i = ze;
      if (i >= 8) break;
    } else if (i > 0) {
      out += ':';
    }
    out += group(i).toString(16);
  }
  return zone ? `${out}%${zone}` : out;
}
