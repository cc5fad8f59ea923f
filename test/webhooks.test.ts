// Webhook building blocks: Standard Webhooks signatures against the specification's published test vector,
// and delivery attempts over real sockets on 127.0.0.1 (refused internal targets, redirects, errors, timeouts).
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { isModelgateError } from '../src/errors.ts';
import { internalAddressKind } from '../src/network/targets.ts';
import {
  checkWebhookUrl,
  MAX_WEBHOOK_URL_LENGTH,
  postWebhook,
  type WebhookTargetPolicy,
} from '../src/webhooks/send.ts';
import {
  generateWebhookSecret,
  signWebhook,
  verifyWebhook,
  webhookHeaders,
} from '../src/webhooks/signature.ts';

/** The vector of the Standard Webhooks reference libraries' "sign function works" tests. */
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};
const VECTOR_HEADERS = {
  'webhook-id': VECTOR.id,
  'webhook-timestamp': String(VECTOR.timestamp),
  'webhook-signature': VECTOR.signature,
};
const AT_VECTOR_TIME = { nowSeconds: VECTOR.timestamp };

const PUBLIC_ONLY: WebhookTargetPolicy = { allowPrivateNetworks: false };
const PRIVATE_ALLOWED: WebhookTargetPolicy = { allowPrivateNetworks: true };
const TIMEOUT_MS = 300;

interface Receiver {
  url: string;
  port: number;
  /** TCP connections accepted, whether or not a request followed. */
  connections: number;
  requests: Array<{ method: string; headers: IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

const receivers: Receiver[] = [];

/** An HTTP server on an ephemeral port of 127.0.0.1 that records each request, then lets `answer` reply. */
async function startReceiver(answer: (response: ServerResponse, request: IncomingMessage) => void) {
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      receiver.requests.push({ method: request.method ?? '', headers: request.headers, body });
      answer(response, request);
    });
  });
  server.on('connection', () => receiver.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    connections: 0,
    requests: [],
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  receivers.push(receiver);
  return receiver;
}

function answerWith(status: number, headers: Record<string, string> = {}) {
  return (response: ServerResponse) => response.writeHead(status, headers).end();
}

function post(url: string, policy: WebhookTargetPolicy, body = '{}', headers: Record<string, string> = {}) {
  return postWebhook(url, body, headers, { policy, timeoutMs: TIMEOUT_MS });
}

after(async () => {
  await Promise.all(receivers.map((receiver) => receiver.close()));
  // Closed handles leave the list in the close phase of the event loop, which a timer waits past.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const sockets = process.getActiveResourcesInfo().filter((resource) => resource.startsWith('TCP'));
  assert.deepEqual(sockets, [], 'no socket or server may outlive the tests');
});

describe('webhook signatures', () => {
  test('signing reproduces the Standard Webhooks test vector', () => {
    assert.equal(signWebhook(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body), VECTOR.signature);
  });

  test('the test vector verifies, with or without the whsec_ prefix and whatever the header case', () => {
    assert.equal(verifyWebhook(VECTOR.secret, VECTOR_HEADERS, VECTOR.body, AT_VECTOR_TIME), true);
    const bareSecret = VECTOR.secret.slice('whsec_'.length);
    assert.equal(verifyWebhook(bareSecret, VECTOR_HEADERS, VECTOR.body, AT_VECTOR_TIME), true);
    const capitalised = {
      'Webhook-Id': VECTOR.id,
      'Webhook-Timestamp': String(VECTOR.timestamp),
      'Webhook-Signature': VECTOR.signature,
    };
    assert.equal(verifyWebhook(VECTOR.secret, capitalised, VECTOR.body, AT_VECTOR_TIME), true);
  });

  test('tampering with the body, the id, the timestamp or the secret fails verification', () => {
    const verify = (secret: string, headers: Record<string, string>, body: string) =>
      verifyWebhook(secret, headers, body, AT_VECTOR_TIME);
    assert.equal(verify(VECTOR.secret, VECTOR_HEADERS, '{"test": 2432232315}'), false);
    assert.equal(verify(VECTOR.secret, VECTOR_HEADERS, `${VECTOR.body} `), false);
    assert.equal(verify(VECTOR.secret, { ...VECTOR_HEADERS, 'webhook-id': 'msg_other' }, VECTOR.body), false);
    const nextSecond = String(VECTOR.timestamp + 1);
    assert.equal(
      verify(VECTOR.secret, { ...VECTOR_HEADERS, 'webhook-timestamp': nextSecond }, VECTOR.body),
      false,
    );
    assert.equal(verify(generateWebhookSecret(), VECTOR_HEADERS, VECTOR.body), false);
  });

  test('a signature list verifies if any v1 entry matches; other versions and malformed entries are skipped', () => {
    const bare = VECTOR.signature.slice('v1,'.length);
    const withSignatures = (signatures: string) => ({ ...VECTOR_HEADERS, 'webhook-signature': signatures });
    const verify = (signatures: string) =>
      verifyWebhook(VECTOR.secret, withSignatures(signatures), VECTOR.body, AT_VECTOR_TIME);
    assert.equal(verify(`v1,bm9wZQ== v1a,${bare} ${VECTOR.signature}`), true);
    assert.equal(verify(`v1,bm9wZQ== v2,${bare} ${bare} v1, v1`), false);
    assert.equal(verify(VECTOR.signature.slice(0, 8)), false);
  });

  test('a timestamp further than the tolerance from now, either way, fails', () => {
    const verifyAt = (nowSeconds: number, toleranceSeconds?: number) =>
      verifyWebhook(VECTOR.secret, VECTOR_HEADERS, VECTOR.body, { nowSeconds, toleranceSeconds });
    assert.equal(verifyAt(VECTOR.timestamp + 300), true);
    assert.equal(verifyAt(VECTOR.timestamp - 300), true);
    assert.equal(verifyAt(VECTOR.timestamp + 301), false, 'stale');
    assert.equal(verifyAt(VECTOR.timestamp - 301), false, 'from the future');
    assert.equal(verifyAt(VECTOR.timestamp + 10, 5), false, 'a tighter tolerance');
    assert.equal(verifyWebhook(VECTOR.secret, VECTOR_HEADERS, VECTOR.body), false, 'against the clock');
  });

  test('missing headers and a non-numeric timestamp fail', () => {
    for (const name of Object.keys(VECTOR_HEADERS)) {
      const headers: Record<string, string | undefined> = { ...VECTOR_HEADERS, [name]: undefined };
      assert.equal(verifyWebhook(VECTOR.secret, headers, VECTOR.body, AT_VECTOR_TIME), false, name);
    }
    for (const timestamp of ['1614265330.0', '1614265330abc', '', '-1614265330']) {
      const headers = { ...VECTOR_HEADERS, 'webhook-timestamp': timestamp };
      assert.equal(verifyWebhook(VECTOR.secret, headers, VECTOR.body, AT_VECTOR_TIME), false, timestamp);
    }
  });

  test('a generated secret is whsec_ and 32 random bytes, and signs and verifies', () => {
    const secret = generateWebhookSecret();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(Buffer.from(secret.slice('whsec_'.length), 'base64').length, 32);
    assert.notEqual(generateWebhookSecret(), secret);
    const now = Math.floor(Date.now() / 1000);
    assert.equal(verifyWebhook(secret, webhookHeaders(secret, 'job_1', now, '{"a":1}'), '{"a":1}'), true);
  });

  test('webhookHeaders carries the id, the timestamp, the signature and the JSON content type', () => {
    assert.deepEqual(webhookHeaders(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body), {
      'content-type': 'application/json',
      ...VECTOR_HEADERS,
    });
  });

  test('an id with a dot, a fractional timestamp and a secret that is not base64 are programming errors', () => {
    assert.throws(() => signWebhook(VECTOR.secret, 'msg.1', VECTOR.timestamp, '{}'), TypeError);
    assert.throws(() => signWebhook(VECTOR.secret, VECTOR.id, 1.5, '{}'), TypeError);
    assert.throws(() => signWebhook('whsec_not base64!', VECTOR.id, VECTOR.timestamp, '{}'), TypeError);
  });
});

describe('webhook URLs', () => {
  const publicOnly = { allowPrivateNetworks: false };
  test('an absolute http or https URL is accepted', () => {
    assert.equal(
      checkWebhookUrl('https://hooks.example.com/modelgate?x=1', publicOnly).hostname,
      'hooks.example.com',
    );
    assert.equal(checkWebhookUrl('http://hooks.example.com:8080/', publicOnly).port, '8080');
  });

  test('an internal IP literal or a localhost name is refused at submit, naming the setting that allows it', () => {
    for (const url of [
      'http://127.0.0.1:9/hook',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://[::1]:9/',
      'http://[::ffff:127.0.0.1]/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::ffff:a9fe:a9fe]/',
      'https://10.1.2.3/',
      'http://192.168.0.1/',
      'http://0.0.0.0/',
      'http://localhost:9/',
      'http://LOCALHOST./',
      'http://hooks.localhost/',
    ]) {
      assert.throws(
        () => checkWebhookUrl(url, publicOnly),
        (error) =>
          isModelgateError(error) &&
          error.code === 'bad_request' &&
          /webhookAllowPrivateNetworks/.test(error.message) &&
          error.details?.setting === 'webhookAllowPrivateNetworks',
        url,
      );
      // The operator's setting lets them through; names that may resolve anywhere wait for the connect.
      assert.ok(checkWebhookUrl(url, { allowPrivateNetworks: true }), url);
    }
    for (const url of ['http://8.8.8.8/', 'http://[2606:4700:4700::1111]/', 'http://notlocalhost.example/']) {
      assert.ok(checkWebhookUrl(url, publicOnly), url);
    }
  });

  test('other schemes, relative URLs, credentials and overlong URLs are bad requests', () => {
    const longUrl = `https://hooks.example.com/${'a'.repeat(MAX_WEBHOOK_URL_LENGTH)}`;
    for (const [url, message] of [
      ['ftp://hooks.example.com/', /http: or https:/],
      ['file:///etc/passwd', /http: or https:/],
      ['/hook', /not an absolute URL/],
      ['hooks.example.com/hook', /not an absolute URL/],
      ['https://user:pass@hooks.example.com/', /username or password/],
      ['https://user@hooks.example.com/', /username or password/],
      [longUrl, /longer than 2048/],
    ] as const) {
      assert.throws(
        () => checkWebhookUrl(url, publicOnly),
        (error) => isModelgateError(error) && error.code === 'bad_request' && message.test(error.message),
        url.slice(0, 40),
      );
    }
  });
});

describe('internal addresses', () => {
  test('each internal range is named, its IPv4-mapped form too, and public addresses are not', () => {
    const kinds: Array<[string, string | undefined]> = [
      ['127.0.0.1', 'loopback'],
      ['127.255.0.9', 'loopback'],
      ['::1', 'loopback'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['0.0.0.0', 'unspecified'],
      ['::', 'unspecified'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['172.31.255.255', 'private'],
      ['192.168.1.1', 'private'],
      ['fd12:3456::1', 'private'],
      ['::ffff:10.0.0.1', 'private'],
      ['169.254.169.254', 'link-local'],
      ['::ffff:169.254.169.254', 'link-local'],
      ['fe80::1', 'link-local'],
      ['100.64.0.1', 'carrier-grade NAT'],
      ['100.127.255.254', 'carrier-grade NAT'],
      ['224.0.0.1', 'multicast'],
      ['ff02::1', 'multicast'],
      ['255.255.255.255', 'broadcast'],
      ['240.0.0.1', 'reserved'],
      ['::7f00:1', 'reserved'],
      ['8.8.8.8', undefined],
      ['172.32.0.1', undefined],
      ['100.128.0.1', undefined],
      ['192.169.0.1', undefined],
      ['2606:4700:4700::1111', undefined],
      ['::ffff:8.8.8.8', undefined],
    ];
    for (const [address, kind] of kinds) assert.equal(internalAddressKind(address), kind, address);
  });
});

describe('webhook delivery', { timeout: 20_000 }, () => {
  test('a signed delivery arrives as a POST with the Standard Webhooks headers and verifies', async () => {
    const receiver = await startReceiver(answerWith(204));
    const secret = generateWebhookSecret();
    const body = JSON.stringify({ type: 'job.completed', data: { id: 'job_1' } });
    const headers = webhookHeaders(secret, 'job_1', Math.floor(Date.now() / 1000), body);
    const result = await post(receiver.url, PRIVATE_ALLOWED, body, headers);
    assert.equal(result.ok, true, result.error);
    assert.equal(result.status, 204);
    assert.equal(result.error, undefined);
    assert.ok(result.durationMs >= 0);

    const [delivery] = receiver.requests;
    assert.ok(delivery);
    assert.equal(delivery.method, 'POST');
    assert.equal(delivery.body, body);
    assert.equal(delivery.headers['content-type'], 'application/json');
    assert.equal(delivery.headers['content-length'], String(Buffer.byteLength(body)));
    assert.equal(delivery.headers['webhook-id'], 'job_1');
    assert.equal(verifyWebhook(secret, delivery.headers, delivery.body), true);
  });

  test('loopback targets, as addresses or a name, are refused without a connection', async () => {
    const receiver = await startReceiver(answerWith(204));
    const { port } = receiver;
    for (const [url, refusal] of [
      [`http://127.0.0.1:${port}/`, /^refused: 127\.0\.0\.1 \(loopback\), which webhooks may not reach$/],
      [`http://2130706433:${port}/`, /^refused: 127\.0\.0\.1 \(loopback\)/],
      [`http://[::1]:${port}/`, /^refused: ::1 \(loopback\)/],
      [`http://[::ffff:127.0.0.1]:${port}/`, /^refused: ::ffff:7f00:1 \(loopback\)/],
      // A name goes through the lookup at connect time, which checks every address it resolves to.
      [`http://localhost:${port}/`, /^refused: localhost resolves to (127\.0\.0\.1|::1) \(loopback\)/],
      [`https://localhost:${port}/`, /^refused: localhost resolves to (127\.0\.0\.1|::1) \(loopback\)/],
    ] as const) {
      const result = await post(url, PUBLIC_ONLY);
      assert.equal(result.ok, false, url);
      assert.equal(result.status, undefined, url);
      assert.match(result.error ?? '', refusal, url);
    }
    assert.equal(receiver.connections, 0);
  });

  test('private and link-local targets, the cloud metadata address among them, are refused', async () => {
    for (const [url, refusal] of [
      ['http://10.0.0.1/', /^refused: 10\.0\.0\.1 \(private\)/],
      ['http://169.254.169.254/latest/meta-data/', /^refused: 169\.254\.169\.254 \(link-local\)/],
      ['https://[::ffff:a9fe:a9fe]/', /^refused: ::ffff:a9fe:a9fe \(link-local\)/],
    ] as const) {
      const result = await post(url, PUBLIC_ONLY);
      assert.equal(result.ok, false, url);
      assert.match(result.error ?? '', refusal, url);
    }
  });

  test('a redirect is a failure and is not followed', async () => {
    const elsewhere = await startReceiver(answerWith(204));
    const receiver = await startReceiver(answerWith(302, { location: elsewhere.url }));
    const result = await post(receiver.url, PRIVATE_ALLOWED);
    assert.equal(result.ok, false);
    assert.equal(result.status, 302);
    assert.equal(
      result.error,
      `the endpoint redirected (302 to ${elsewhere.url}); redirects are not followed`,
    );
    assert.equal(receiver.requests.length, 1);
    assert.equal(elsewhere.connections, 0);
  });

  test('a 500 is a failure with its status', async () => {
    const receiver = await startReceiver(answerWith(500));
    const result = await post(receiver.url, PRIVATE_ALLOWED);
    assert.deepEqual(
      { ...result, durationMs: 0 },
      {
        ok: false,
        status: 500,
        error: 'the endpoint answered 500',
        durationMs: 0,
      },
    );
  });

  test('an endpoint that never answers times out', async () => {
    const receiver = await startReceiver(() => {});
    const result = await post(receiver.url, PRIVATE_ALLOWED);
    assert.equal(result.ok, false);
    assert.equal(result.status, undefined);
    assert.equal(result.error, `timed out after ${TIMEOUT_MS} ms`);
    assert.equal(receiver.requests.length, 1, 'the request was sent; the answer never came');
  });

  test('an answer whose body stalls times out too, with its status', async () => {
    const receiver = await startReceiver((response) => response.writeHead(200).write('partial'));
    const result = await post(receiver.url, PRIVATE_ALLOWED);
    assert.equal(result.ok, false);
    assert.equal(result.status, 200);
    assert.equal(result.error, `timed out after ${TIMEOUT_MS} ms reading the answer`);
  });

  test('an endless answer body is read only up to a cap', async () => {
    const chunk = Buffer.alloc(16 * 1024, 'x');
    const receiver = await startReceiver((response) => {
      response.writeHead(200);
      const writeMore = () => {
        while (!response.destroyed && response.write(chunk));
      };
      response.on('drain', writeMore);
      writeMore();
    });
    // Were the whole body read, this could only end by timing out.
    const result = await postWebhook(receiver.url, '{}', {}, { policy: PRIVATE_ALLOWED, timeoutMs: 5_000 });
    assert.equal(result.ok, true, result.error);
    assert.equal(result.status, 200);
  });

  test('a refused connection is a failure', async () => {
    const receiver = await startReceiver(answerWith(204));
    await receiver.close();
    const result = await post(receiver.url, PRIVATE_ALLOWED);
    assert.equal(result.ok, false);
    assert.match(result.error ?? '', /^request failed: .*ECONNREFUSED/);
  });

  test('an invalid URL is a failed attempt, not an exception', async () => {
    const result = await post('ftp://hooks.example.com/', PRIVATE_ALLOWED);
    assert.equal(result.ok, false);
    assert.match(result.error ?? '', /^invalid webhook URL: a webhook URL must be http: or https:/);
  });
});
