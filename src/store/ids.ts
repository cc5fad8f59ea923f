// Public identifiers: a type prefix and 16 random bytes in base32 (lowercase, no padding), e.g. `tn_…`.
import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

export function encodeBase32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** Random bytes are drawn 4 KiB at a time: one call per id cost a busy gateway ~2% of its CPU. */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let offset = 0;

export function newId(prefix: 'tn' | 'key' | 'mdl' | 'job' | 'wrk' | 'bat'): string {
  if (offset + 16 > pool.length) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const bytes = pool.subarray(offset, (offset += 16));
  return `${prefix}_${encodeBase32(bytes)}`;
}
