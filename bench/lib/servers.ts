// The four servers of the realtime benchmark and how each is started: the two peers under bench/peers/
// (through tsx) and modelgate itself (bin/modelgate.js serve --examples), each on an ephemeral port of
// 127.0.0.1 with a fresh data directory, and nothing of this environment's MODELGATE_* settings leaking
// into the peers. bench:runtimes starts its peers and modelgate through here too.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig } from '../../src/config/config.ts';
import { startServer, type ServerProcess } from './children.ts';
import type { ServerId } from './report.ts';
import type { ModelName } from './workload.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const HOST = '127.0.0.1';

/** The ceiling answers with the response bytes of a server measured before it, so it starts last. */
export const START_ORDER: readonly ServerId[] = [
  'modelgate-no-batching',
  'modelgate-batching',
  'peer',
  'ceiling',
];

/** modelgate settings the benchmark owns; every other MODELGATE_* variable of this environment passes through. */
export const OWNED_MODELGATE_ENV = [
  'MODELGATE_DATA_DIR',
  'MODELGATE_PORT',
  'MODELGATE_ADMIN_KEY',
  'MODELGATE_LOG_LEVEL',
];

export interface ServerInputs {
  /** Admin key of every modelgate server (each starts on an empty database). */
  adminKey: string;
  /** Scratch directory of this run: data directories and files handed to the peers. */
  runDir: string;
  /** ONNX files the bare peer loads. */
  modelPaths: ReadonlyMap<ModelName, string>;
  /** What the ceiling answers, per model. */
  ceilingResponses: ReadonlyMap<ModelName, Buffer>;
  /** Extra node flags for modelgate (e.g. --cpu-prof). */
  modelgateNodeArgs: readonly string[];
}

function modelgateEnv(adminKey: string, dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of OWNED_MODELGATE_ENV) delete env[name];
  return { ...env, MODELGATE_ADMIN_KEY: adminKey, MODELGATE_DATA_DIR: dataDir };
}

function peerEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MODELGATE_')));
}

// The peers print one JSON line once they listen: {"event":"listening","port":…, …}.
function parsePeerReadyLine(line: string) {
  if (!line.startsWith('{"event":"listening"')) return undefined;
  const info = JSON.parse(line) as { port: number } & Record<string, unknown>;
  return { url: `http://${HOST}:${info.port}`, info };
}

/** A peer server, `command args` run from the repository root, that prints that line once it listens. */
export function startPeer(label: string, command: string, args: string[]): Promise<ServerProcess> {
  return startServer({
    label,
    command,
    args,
    cwd: REPO_ROOT,
    env: peerEnv(),
    parseReadyLine: parsePeerReadyLine,
  });
}

/** One of the peers under bench/peers/ (`script`, from the repository root), through tsx, on an ephemeral port. */
export const startNodePeer = (label: string, script: string, args: string[]) =>
  startPeer(label, process.execPath, ['--import', 'tsx', join(REPO_ROOT, script), '--port', '0', ...args]);

export async function startBenchServer(id: ServerId, inputs: ServerInputs): Promise<ServerProcess> {
  switch (id) {
    case 'ceiling': {
      const args = [...inputs.ceilingResponses].map(([model, bytes]) => {
        const path = join(inputs.runDir, `${model}.response.json`);
        writeFileSync(path, bytes);
        return `--response=${model}=${path}`;
      });
      return startNodePeer(id, 'bench/peers/fixed-response.ts', args);
    }
    case 'peer': {
      const args = [...inputs.modelPaths].map(([model, path]) => `--model=${model}=${path}`);
      return startNodePeer(id, 'bench/peers/bare-onnx.ts', args);
    }
    case 'modelgate-no-batching':
    case 'modelgate-batching': {
      const serve = ['serve', '--examples', '--host', HOST, '--port', '0', '--log-level', 'warn'];
      if (id === 'modelgate-no-batching') serve.push('--no-batching');
      return startServer({
        label: id,
        command: process.execPath,
        args: [...inputs.modelgateNodeArgs, join(REPO_ROOT, 'bin/modelgate.js'), ...serve],
        cwd: REPO_ROOT,
        env: modelgateEnv(inputs.adminKey, join(inputs.runDir, `${id}-data`)),
        parseReadyLine: (line) => {
          const match = /modelgate is running at (http:\/\/\S+)/.exec(line);
          return match ? { url: match[1]! } : undefined;
        },
      });
    }
  }
}

/**
 * The configuration a modelgate server of this run resolves, as modelgate itself resolves it (the key left
 * out); if modelgate would refuse it, the reason, so that it shows before any measuring starts.
 */
export function modelgateConfigFor(id: ServerId, adminKey: string): Record<string, unknown> {
  const batching = id === 'modelgate-no-batching' ? false : undefined;
  const env = modelgateEnv(adminKey, '(per server, under bench/tmp/)');
  try {
    const config: Record<string, unknown> = {
      ...resolveConfig({ port: 0, host: HOST, logLevel: 'warn', batching }, env),
    };
    delete config.adminKey;
    return config;
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}
