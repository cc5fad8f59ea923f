// The runtimes benchmark's http part: a model server that runs one request at a time and gains from
// batches (wide-mlp behind bench/peers/v2-upstream.ts, Open Inference Protocol v2 JSON), called directly,
// and through modelgate's http runtime, which batches in front of it; one row per request, 1 and 64 clients.
// The server runs twice: with ORT's defaults (a pool of one spinning thread per core, its best alone on the
// machine) and with one intra-op thread (what a team sets on cores it shares, here with modelgate and the
// load generator); the targets take each side at its best configuration.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SETUPS, UPSTREAM_CONFIGURATIONS, type Cell } from './runtimes-report.ts';
import {
  addNote,
  autocannonLoad,
  call,
  callSetup,
  checkAnswer,
  deployedVersionOf,
  deployVersion,
  expectStatus,
  jsonOf,
  largestDifference,
  log,
  measureSetup,
  modelgateServing,
  startModelgate,
  type Part,
  type RunContext,
} from './runtimes-measure.ts';
import { startNodePeer } from './servers.ts';
import { buildWorkload, type Workload } from './workload.ts';

const CLIENTS = [1, 64];

/**
 * How many calls modelgate has in flight to the upstream. The upstream runs one inference at a time, so
 * more only queue there; with one, every request that arrives while a call runs joins the next batch.
 * Alternating 3 s runs at 64 clients (2026-12-04, four each, on a busy machine): concurrency 1 served
 * 7.9k req/s summed, 2 served 6.4k, 4 served 5.9k, with batches of ~31, ~19 and ~12 rows.
 */
const HTTP_UPSTREAM_CONCURRENCY = 1;
const UPSTREAM_MODEL = 'wide-mlp';

/** Built once per run, the same bytes every round. */
let cachedWorkload: Workload | undefined;

async function runHttpPart(context: RunContext): Promise<Cell[]> {
  const workload = (cachedWorkload ??= buildWorkload('wide-mlp'));
  const modelPath = join(context.runDir, 'wide-mlp.onnx');
  writeFileSync(modelPath, workload.onnx);
  const cells: Cell[] = [];
  for (const configuration of UPSTREAM_CONFIGURATIONS) {
    cells.push(...(await measureUpstream(context, workload, modelPath, configuration)));
  }
  return cells;
}

async function measureUpstream(
  context: RunContext,
  workload: Workload,
  modelPath: string,
  { direct: directSetup, inFront, args }: (typeof UPSTREAM_CONFIGURATIONS)[number],
): Promise<Cell[]> {
  const { options } = context;
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${context.adminKey}` };
  const cells: Cell[] = [];

  log(`starting ${SETUPS[directSetup].label}`);
  const upstream = await startNodePeer('v2-upstream', 'bench/peers/v2-upstream.ts', [
    `--model=${UPSTREAM_MODEL}=${modelPath}`,
    ...args,
  ]);
  try {
    // The same upstream process serves both setups: ORT's default thread pool behaves differently from one
    // process start to the next (see README, Realtime results), and both should meet the same one.
    const metadata = await call(`${upstream.url}/v2/models/${UPSTREAM_MODEL}`, {});
    expectStatus(metadata, 200, 'upstream metadata');
    const directBody = JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, workload.row.length], data: workload.row }],
    });
    const directUrl = `${upstream.url}/v2/models/${UPSTREAM_MODEL}/infer`;
    const direct = await callSetup(directSetup, directUrl, { body: directBody, headers });
    const reference = (jsonOf(direct).outputs as { data: number[] }[])[0]!.data;
    checkAnswer(context, directSetup, 0, { announced: upstream.info, metadata: jsonOf(metadata) });
    const upstreamOnly = { processes: { upstream: upstream.pid } };
    const directLoad = autocannonLoad(directUrl, headers, directBody);
    cells.push(...(await measureSetup(directSetup, upstreamOnly, directLoad, options, CLIENTS)));

    log(`starting ${SETUPS[inFront].label} (${SETUPS[directSetup].label})`);
    const modelgate = await startModelgate(context, 'http');
    try {
      const deployment = {
        runtime: 'http',
        protocol: 'v2',
        url: upstream.url,
        model: UPSTREAM_MODEL,
        concurrency: HTTP_UPSTREAM_CONCURRENCY,
        timeoutMs: 30_000,
      };
      const deployed = await deployVersion(context, modelgate, 'wide-http', deployment);
      if (deployed.status !== 201) {
        // A checkout without the http runtime (or one that refuses this upstream): the direct half stands alone.
        const why = `deploying the http runtime answered ${deployed.status}: ${deployed.bytes.toString().slice(0, 300)}`;
        log(`  ${why}; skipping ${SETUPS[inFront].label}`);
        addNote(context, `${inFront} not measured: ${why}`);
        return cells;
      }
      const url = `${modelgate.url}/v1/models/wide-http/predict`;
      const body = workload.body;
      const answer = await callSetup(inFront, url, { body, headers });
      const outputs = jsonOf(answer).outputs as { y: number[][] };
      checkAnswer(context, inFront, largestDifference(outputs.y[0]!, reference), {
        deployment,
        deployedVersion: deployedVersionOf(deployed),
      });
      const serving = modelgateServing(modelgate, 'wide-http', { upstream: upstream.pid });
      const load = autocannonLoad(url, headers, body);
      cells.push(...(await measureSetup(inFront, serving, load, options, CLIENTS)));
    } finally {
      await modelgate.stop();
    }
  } finally {
    await upstream.stop();
  }
  return cells;
}

export const httpPart: Part = {
  clients: CLIENTS,
  settings: {
    upstreamModel: UPSTREAM_MODEL,
    upstreamConcurrency: HTTP_UPSTREAM_CONCURRENCY,
    upstreamConfigurations: Object.fromEntries(
      UPSTREAM_CONFIGURATIONS.map((c) => [c.direct, c.args.join(' ')]),
    ),
  },
  run: runHttpPart,
};
