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

export function newId(prefix: 'tn' | 'key' | 'mdl' | 'job' | 'wrk'): string {
  return `${prefix}_${encodeBase32(randomBytes(16))}`;
}
