// Webhook delivery attempts: one POST that never follows a redirect and, unless the operator allows it,
// refuses any target that is or resolves to a loopback, private, link-local or other internal address (SSRF).
import { lookup as lookupHost } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ModelgateError } from '../errors.ts';

export const MAX_WEBHOOK_URL_LENGTH = 2048;
/** Bytes of an answer's body read before the connection is dropped; receivers have nothing to tell us there. */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Characters of a redirect's Location quoted in the attempt's error. */
const MAX_QUOTED_LOCATION = 200;

export interface WebhookTargetPolicy {
  /**
   * Let deliveries reach loopback, private, link-local and other internal addresses. Only for receivers on
   * the operator's own network (and tests): with it, any user who can submit a job can make us call them.
   */
  allowPrivateNetworks: boolean;
}

export interface WebhookAttemptResult {
  /** The endpoint answered 2xx. */
  ok: boolean;
  /** The HTTP status, when an answer arrived. */
  status?: number;
  /** Why the attempt failed, for the delivery log. */
  error?: string;
  durationMs: number;
}

export interface PostWebhookOptions {
  policy: WebhookTargetPolicy;
  /** Limit on the whole attempt: resolving, connecting, sending and reading the answer. */
  timeoutMs: number;
}

type Outcome = Omit<WebhookAttemptResult, 'durationMs'>;

/**
 * What webhooks may not reach, named as a refusal names it; the first kind that matches wins. BlockList
 * matches IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) against the IPv4 subnets.
 */
const INTERNAL_SUBNETS: ReadonlyArray<[kind: string, network: string, prefix: number]> = [
  ['loopback', '127.0.0.0', 8],
  ['loopback', '::1', 128],
  ['unspecified', '0.0.0.0', 8],
  ['unspecified', '::', 128],
  ['private', '10.0.0.0', 8],
  ['private', '172.16.0.0', 12],
  ['private', '192.168.0.0', 16],
  ['private', 'fc00::', 7],
  // Includes 169.254.169.254, the cloud metadata service.
  ['link-local', '169.254.0.0', 16],
  ['link-local', 'fe80::', 10],
  ['carrier-grade NAT', '100.64.0.0', 10],
  ['multicast', '224.0.0.0', 4],
  ['multicast', 'ff00::', 8],
  ['broadcast', '255.255.255.255', 32],
  ['reserved', '240.0.0.0', 4],
  // The deprecated IPv4-compatible addresses (::127.0.0.1), which BlockList does not map to IPv4.
  ['reserved', '::', 96],
];

const INTERNAL_BLOCK_LISTS = new Map<string, BlockList>();
for (const [kind, network, prefix] of INTERNAL_SUBNETS) {
  const list = INTERNAL_BLOCK_LISTS.get(kind) ?? new BlockList();
  list.addSubnet(network, prefix, isIP(network) === 6 ? 'ipv6' : 'ipv4');
  INTERNAL_BLOCK_LISTS.set(kind, list);
}

/** The kind of internal address an IP address is (`loopback`, `private`…), or undefined for a public one. */
export function internalAddressKind(address: string): string | undefined {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  for (const [kind, list] of INTERNAL_BLOCK_LISTS) if (list.check(address, family)) return kind;
  return undefined;
}

/** Thrown by the lookup so that the attempt's error is the refusal itself. */
class RefusedTargetError extends Error {}

function refusal(host: string, address: string, kind: string): string {
  const target = host === address ? address : `${host} resolves to ${address}`;
  return `refused: ${target} (${kind}), which webhooks may not reach`;
}

/**
 * dns.lookup that fails if ANY address of the name is internal. It runs when the socket connects, so the
 * addresses checked are the ones used: a name cannot pass a check and then rebind to 127.0.0.1.
 */
const lookupPublicHost: LookupFunction = (hostname, options, callback) => {
  lookupHost(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, '');
    for (const { address } of addresses) {
      const kind = internalAddressKind(address);
      if (kind) return callback(new RefusedTargetError(refusal(hostname, address, kind)), '');
    }
    if (options.all) return callback(null, addresses);
    const [first] = addresses;
    if (!first) return callback(new Error(`${hostname} has no addresses`), '');
    callback(null, first.address, first.family);
  });
};

function invalidUrl(message: string, cause?: unknown): ModelgateError {
  return new ModelgateError('bad_request', message, { cause });
}

/** An absolute http(s) URL without credentials: what a webhook URL must be, at submit and at delivery. */
function parseWebhookUrl(url: string): URL {
  if (url.length > MAX_WEBHOOK_URL_LENGTH) {
    throw invalidUrl(`the webhook URL is longer than ${MAX_WEBHOOK_URL_LENGTH} characters`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw invalidUrl('the webhook URL is not an absolute URL', error);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidUrl(`a webhook URL must be http: or https:, not ${parsed.protocol}`);
  }
  if (parsed.username || parsed.password) {
    throw invalidUrl('a webhook URL may not carry a username or password; deliveries are signed instead');
  }
  return parsed;
}

/** The host of a URL as an address when it is an IP literal (brackets of IPv6 removed), else undefined. */
function ipLiteralOf(target: URL): string | undefined {
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  return isIP(host) ? host : undefined;
}

/**
 * Checks a webhook URL when a job is submitted. What can be known then is refused then: a malformed URL,
 * and, unless the policy allows private networks, an IP literal in an internal range or a `localhost` name
 * (RFC 6761: always loopback). Other names are checked at connect time, when they resolve.
 */
export function checkWebhookUrl(url: string, policy: WebhookTargetPolicy): URL {
  const target = parseWebhookUrl(url);
  if (policy.allowPrivateNetworks) return target;
  const literal = ipLiteralOf(target);
  const kind =
    literal !== undefined
      ? internalAddressKind(literal)
      : /(^|\.)localhost\.?$/i.test(target.hostname)
        ? 'loopback'
        : undefined;
  if (kind) {
    throw new ModelgateError(
      'bad_request',
      `the webhook URL's host ${target.hostname} is a ${kind} address, which webhooks may not reach; ` +
        'an operator allows such receivers with webhookAllowPrivateNetworks (MODELGATE_WEBHOOK_ALLOW_PRIVATE_NETWORKS)',
      { details: { webhook_url: url, setting: 'webhookAllowPrivateNetworks' } },
    );
  }
  return target;
}

function verdict(response: IncomingMessage): Outcome {
  const status = response.statusCode ?? 0;
  if (status >= 200 && status < 300) return { ok: true, status };
  if (status >= 300 && status < 400) {
    const location = response.headers.location?.slice(0, MAX_QUOTED_LOCATION);
    const to = location ? ` to ${location}` : '';
    return {
      ok: false,
      status,
      error: `the endpoint redirected (${status}${to}); redirects are not followed`,
    };
  }
  return { ok: false, status, error: `the endpoint answered ${status}` };
}

function send(target: URL, body: string, headers: Record<string, string>, options: PostWebhookOptions) {
  return new Promise<Outcome>((resolve) => {
    const request = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      // A fresh connection per attempt: each one resolves and checks its target again.
      agent: false,
      ...(options.policy.allowPrivateNetworks ? {} : { lookup: lookupPublicHost }),
    });
    let status: number | undefined;
    let settled = false;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      const stage = status === undefined ? '' : ' reading the answer';
      settle({ ok: false, status, error: `timed out after ${options.timeoutMs} ms${stage}` });
    }, options.timeoutMs);

    request.on('error', (error) => {
      const message =
        error instanceof RefusedTargetError ? error.message : `request failed: ${error.message}`;
      settle({ ok: false, status, error: message });
    });
    request.on('response', (response) => {
      status = response.statusCode;
      const outcome = verdict(response);
      let receivedBytes = 0;
      response.on('data', (chunk: Buffer) => {
        receivedBytes += chunk.length;
        if (receivedBytes >= MAX_RESPONSE_BYTES) settle(outcome);
      });
      response.on('end', () => settle(outcome));
      response.on('error', (error) => {
        settle({ ok: false, status, error: `reading the answer failed: ${error.message}` });
      });
    });
    request.end(body);
  });
}

/**
 * POSTs one delivery attempt and reports how it went. Never throws: a refused target, a network error, a
 * timeout and a non-2xx answer are all `ok: false` with an `error`, so every attempt can be recorded.
 */
export async function postWebhook(
  url: string,
  body: string,
  headers: Record<string, string>,
  options: PostWebhookOptions,
): Promise<WebhookAttemptResult> {
  const startedAt = performance.now();
  const outcome = await attempt(url, body, headers, options);
  return { ...outcome, durationMs: Math.round(performance.now() - startedAt) };
}

async function attempt(
  url: string,
  body: string,
  headers: Record<string, string>,
  options: PostWebhookOptions,
): Promise<Outcome> {
  let target: URL;
  try {
    target = parseWebhookUrl(url);
  } catch (error) {
    return { ok: false, error: `invalid webhook URL: ${(error as Error).message}` };
  }
  // An IP literal never goes through the lookup, so it is checked here.
  const literal = options.policy.allowPrivateNetworks ? undefined : ipLiteralOf(target);
  const kind = literal === undefined ? undefined : internalAddressKind(literal);
  if (literal !== undefined && kind) return { ok: false, error: refusal(literal, literal, kind) };
  return send(target, body, headers, options);
}
