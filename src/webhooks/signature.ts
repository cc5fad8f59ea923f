// Standard Webhooks signatures (https://www.standardwebhooks.com/): an HMAC-SHA256 of `id.timestamp.body`
// keyed by a `whsec_` secret, sent as the webhook-id, webhook-timestamp and webhook-signature headers.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';
/** The SHA-256 output size; the spec asks for at least 24 random bytes. */
const SECRET_BYTES = 32;
const SIGNATURE_VERSION = 'v1';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Five minutes either way, as in the Standard Webhooks reference libraries. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function generateWebhookSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

/** The HMAC key of a secret: the base64 after `whsec_` (the prefix is optional, as in the reference libraries). */
function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  if (!BASE64.test(encoded)) throw new TypeError('a webhook secret is `whsec_` followed by base64');
  return Buffer.from(encoded, 'base64');
}

function signatureOf(key: Buffer, id: string, timestampSeconds: number, body: string): string {
  return createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
}

/** `v1,<base64 signature>`. The id may not contain `.`, which would make the signed content ambiguous. */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  if (id === '' || id.includes('.')) throw new TypeError(`a webhook id must be non-empty without '.': ${id}`);
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new TypeError(`a webhook timestamp is whole seconds since the epoch: ${timestampSeconds}`);
  }
  return `${SIGNATURE_VERSION},${signatureOf(secretKey(secret), id, timestampSeconds, body)}`;
}

/** The headers of one delivery attempt; each attempt gets a fresh timestamp, the id stays the same. */
export function webhookHeaders(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': signWebhook(secret, id, timestampSeconds, body),
  };
}

export interface VerifyWebhookOptions {
  /** How far the timestamp may be from now, either way, in seconds. Default 300. */
  toleranceSeconds?: number;
  /** The current time in seconds since the epoch. Default: the clock. */
  nowSeconds?: number;
}

/** A header by case-insensitive name; repeated headers (arrays) are not a valid delivery. */
function headerValue(
  headers: Record<string, string | string[] | undefined>,
  name: string,
): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) return typeof value === 'string' ? value : undefined;
  }
  return undefined;
}

/**
 * Whether a delivery is authentic and fresh: one of the space-separated `v1` signatures matches (compared
 * in constant time) and the timestamp is within tolerance of now. Pass the body exactly as received.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  options: VerifyWebhookOptions = {},
): boolean {
  const id = headerValue(headers, 'webhook-id');
  const timestamp = headerValue(headers, 'webhook-timestamp');
  const signatures = headerValue(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures || !/^\d{1,15}$/.test(timestamp)) return false;

  const timestampSeconds = Number(timestamp);
  const nowSeconds = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowSeconds - timestampSeconds) > (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) {
    return false;
  }

  const expected = Buffer.from(signatureOf(secretKey(secret), id, timestampSeconds, body));
  return signatures.split(' ').some((entry) => {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== SIGNATURE_VERSION) return false;
    const candidate = Buffer.from(entry.slice(comma + 1));
    return candidate.length === expected.length && timingSafeEqual(candidate, expected);
  });
}
