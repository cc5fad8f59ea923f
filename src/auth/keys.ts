// API keys: `mg_` and 192 random bits in base32. Shown once; stored as a SHA-256 digest plus a short
// display prefix, so a leaked database does not leak usable keys.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { encodeBase32 } from '../store/ids.ts';

export const SCOPES = ['admin', 'deploy', 'predict', 'read'] as const;
export type Scope = (typeof SCOPES)[number];

/** What each scope also grants: `admin` everything, `deploy` reading. */
const IMPLIED: Record<Scope, readonly Scope[]> = {
  admin: SCOPES,
  deploy: ['deploy', 'read'],
  predict: ['predict'],
  read: ['read'],
};

export function grants(scopes: readonly string[], needed: Scope): boolean {
  return scopes.some((scope) => IMPLIED[scope as Scope]?.includes(needed));
}

export const KEY_PREFIX = 'mg_';
const DISPLAY_PREFIX_LENGTH = KEY_PREFIX.length + 8;

export interface GeneratedKey {
  /** The key itself: give it to the user once, never store it. */
  secret: string;
  digest: string;
  displayPrefix: string;
}

export function digestKey(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function generateKey(): GeneratedKey {
  const secret = KEY_PREFIX + encodeBase32(randomBytes(24));
  return { secret, digest: digestKey(secret), displayPrefix: secret.slice(0, DISPLAY_PREFIX_LENGTH) };
}

/** Accepts a key chosen by the operator (MODELGATE_ADMIN_KEY) if it looks like one of ours. */
export function keyFromSecret(secret: string): GeneratedKey | undefined {
  if (!secret.startsWith(KEY_PREFIX) || secret.length < 32 || !/^[\x21-\x7e]+$/.test(secret))
    return undefined;
  return { secret, digest: digestKey(secret), displayPrefix: secret.slice(0, DISPLAY_PREFIX_LENGTH) };
}

/** Constant-time comparison of two hex digests. */
export function digestsEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && timingSafeEqual(left, right);
}
