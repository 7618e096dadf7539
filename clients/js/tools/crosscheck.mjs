// Reads {"cases": [[salt, key], ...], "ips": [...]} from the file named by the first
// argument and prints {"buckets": [...], "ips": [...]}: the Go tests compare them with
// their own results (routing/clientcfg, TestCrossCheckJS).
import { readFileSync } from 'node:fs';
import { bucket, ipKey } from '../shiftgate.mjs';

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = {
  buckets: input.cases.map(([salt, key]) => bucket(salt, key)),
  ips: input.ips.map(ipKey),
};
process.stdout.write(JSON.stringify(out));
