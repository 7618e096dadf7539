// shiftgate client: pick a region with the gateway's own split algorithm.
//
// An ES module without dependencies or build step, for browsers, React Native
// (Hermes, which has BigInt) and Node 20+. Tested against ../vectors.json, the
// vectors `shiftgate vectors` prints.

export { xxh64, utf8, bucket, BUCKETS } from './src/xxh64.mjs';
export { ipKey } from './src/ip.mjs';
export { ALGORITHM, DEFAULT_TTL, ConfigError, parseConfig, threshold } from './src/config.mjs';
export { decide, explain, clientHeader } from './src/decide.mjs';
export { ConfigFetcher } from './src/fetcher.mjs';
