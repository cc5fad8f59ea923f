// Benchmark ceiling: a bare node:http server that reads the request body and answers a fixed response
// (the bytes modelgate answered for that model), with no inference. Whatever it reaches is what HTTP and
// the load generator cost on this machine.
// Usage: node --import tsx bench/peers/fixed-response.ts --port 0 --response iris=/path/to/body.json ...
// Prints one JSON line `{"event":"listening","port":…}` on stdout once it accepts connections.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    response: { type: 'string', multiple: true, default: [] },
  },
  strict: true,
});

const PREDICT_PATH = /^\/v1\/models\/([^/]+)\/predict$/;
const responses = new Map<string, Buffer>();
for (const entry of values.response) {
  const [name, path] = entry.split('=');
  if (!name || !path) throw new Error(`--response takes name=path, got "${entry}"`);
  responses.set(name, readFileSync(path));
}

const server = createServer((request, response) => {
  const body = responses.get(PREDICT_PATH.exec(request.url ?? '')?.[1] ?? '');
  // Drain the request like any real handler would before answering.
  request.resume();
  request.on('end', () => {
    if (!body) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': body.length,
    });
    response.end(body);
  });
});

server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ event: 'listening', port })}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
