// Webhook delivery attempts: one POST that never follows a redirect and, unless the operator allows it,
// refuses any target that is or resolves to a loopback, private, link-local or other internal address (SSRF).
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { performance } from 'node:perf_hooks';
import { ModelgateError } from '../errors.ts';
import { ipLiteralOf, RefusedTargetError, TargetPolicy } from '../network/targets.ts';

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

const POLICIES = {
  private: new TargetPolicy('webhooks', 'all'),
  public: new TargetPolicy('webhooks', []),
};
const targetPolicy = ({ allowPrivateNetworks }: WebhookTargetPolicy) =>
  allowPrivateNetworks ? POLICIES.private : POLICIES.public;

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

/**
 * Checks a webhook URL when a job is submitted. What can be known then is refused then: a malformed URL,
 * and, unless the policy allows private networks, an IP literal in an internal range or a `localhost` name
 * (RFC 6761: always loopback). Other names are checked at connect time, when they resolve.
 */
export function checkWebhookUrl(url: string, policy: WebhookTargetPolicy): URL {
  const target = parseWebhookUrl(url);
  const kind = targetPolicy(policy).refusedHostKind(target);
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
      lookup: targetPolicy(options.policy).lookup,
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
  const policy = targetPolicy(options.policy);
  const literal = ipLiteralOf(target);
  const kind = literal === undefined ? undefined : policy.refusedKind(literal);
  if (literal !== undefined && kind) return { ok: false, error: policy.refusal(literal, literal, kind) };
  return send(target, body, headers, options);
}
