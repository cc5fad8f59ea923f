// The typed client against answers that are not modelgate's: a proxy's HTML error page, an empty error, a
// 2xx that is not JSON. Each becomes its own ApiError with the status, never a SyntaxError.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ApiError, ModelgateClient } from '../src/client/client.ts';

/** What the server answers for each path: status, content type, body. */
const ANSWERS: Record<string, [number, string, string]> = {
  '/v1/models': [502, 'text/html', '<html><body><h1>502 Bad Gateway</h1></body></html>'],
  '/v1/keys': [500, 'text/plain', ''],
  '/v1/tenants': [200, 'text/html', '<html>a captive portal</html>'],
  '/v1/batches/bat_x/output': [503, 'text/html', '<html>upstream unavailable</html>'],
  '/v1/jobs/job_x': [
    404,
    'application/problem+json',
    JSON.stringify({
      type: 'urn:modelgate:error:job_not_found',
      title: 'job not found',
      status: 404,
      detail: 'job job_x not found',
      code: 'job_not_found',
    }),
  ],
};

describe('client errors', () => {
  let server: Server;
  let client: ModelgateClient;

  before(async () => {
    server = createServer((request, response) => {
      const [status, type, body] = ANSWERS[request.url ?? ''] ?? [404, 'text/plain', 'no'];
      response.writeHead(status, { 'content-type': type }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = new ModelgateClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const rejectsWith = async (call: Promise<unknown>, status: number, code: string, detail: RegExp) => {
    await assert.rejects(call, (error: unknown) => {
      assert.ok(error instanceof ApiError, `an ApiError, not ${String(error)}`);
      assert.equal(error.problem.status, status);
      assert.equal(error.problem.code, code);
      assert.match(error.problem.detail, detail);
      assert.match(error.message, new RegExp(`HTTP ${status}`));
      return true;
    });
  };

  it("a proxy's HTML error page becomes an ApiError with its status and the start of its text", async () => {
    await rejectsWith(client.listModels(), 502, 'unknown', /Bad Gateway: <html><body><h1>502 Bad Gateway/);
    await rejectsWith(client.download('/v1/batches/bat_x/output'), 503, 'unknown', /upstream unavailable/);
  });

  it('an error without a body, and a 2xx that is not JSON, become ApiErrors too', async () => {
    await rejectsWith(client.listKeys(), 500, 'unknown', /Internal Server Error/);
    await rejectsWith(client.listTenants(), 200, 'unknown', /a captive portal/);
  });

  it('a problem document is kept as it is', async () => {
    await rejectsWith(client.getJob('job_x'), 404, 'job_not_found', /^job job_x not found$/);
  });
});
