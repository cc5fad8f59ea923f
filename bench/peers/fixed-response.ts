// Benchmark ceiling: a bare node:http server that reads the request body and answers a fixed response
// (the bytes modelgate answered for that model), with no inference. Whatever it reaches is what HTTP and
// the load generator cost on this machine. It answers POST /v1/models/{m}/predict and /v2/models/{m}/infer;
// a response file ending in .bin goes out as application/octet-stream, any other as JSON.
// Usage: node --import tsx bench/peers/fixed-response.ts --port 0 --response iris=/path/to/body.json ...
// Prints one JSON line `{"event":"listening","port":…}` on stdout once it accepts connections.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { readPeerArgs, serve } from './serve.ts';

const { port, paths } = readPeerArgs('response');

const MODEL_PATH = /^\/(?:v1\/models\/([^/]+)\/predict|v2\/models\/([^/]+)\/infer)$/;
const responses = new Map<string, { bytes: Buffer; contentType: string }>();
for (const [name, path] of paths) {
  const contentType = path.endsWith('.bin') ? 'application/octet-stream' : 'application/json; charset=utf-8';
  responses.set(name, { bytes: readFileSync(path), contentType });
}

const server = createServer((request, response) => {
  const match = MODEL_PATH.exec(request.url ?? '');
  const answer = responses.get(match?.[1] ?? match?.[2] ?? '');
  // Drain the request like any real handler would before answering.
  request.resume();
  request.on('end', () => {
    if (!answer) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': answer.contentType, 'content-length': answer.bytes.length });
    response.end(answer.bytes);
  });
});

serve(server, port);
