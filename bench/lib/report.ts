// The realtime benchmark's verdict: the results table as text, and the issue's targets checked against
// the measured cells. A cell with non-2xx answers or errors is flagged, and a target that depends on one
// fails rather than trusting its numbers.
import type { BatchStats } from './modelgate-metrics.ts';
import {
  checkPair,
  fmt,
  formatNotes,
  formatRoundsRange,
  formatRows,
  isNoisyLoad,
  medianRounds,
  type TargetCheck,
} from './verdict.ts';
import type { ModelName } from './workload.ts';

export const SERVER_IDS = ['ceiling', 'peer', 'modelgate-no-batching', 'modelgate-batching'] as const;
export type ServerId = (typeof SERVER_IDS)[number];

export const SERVER_LABELS: Record<ServerId, string> = {
  ceiling: '(a) ceiling: fixed response',
  peer: '(b) peer: bare node:http + ORT',
  'modelgate-no-batching': '(c) modelgate, batching off',
  'modelgate-batching': '(d) modelgate, batching on',
};

export interface Cell {
  server: ServerId;
  model: ModelName;
  clients: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  meanMs: number;
  responses2xx: number;
  durationSeconds: number;
  /** CPU cores the server process used during the cell (all threads, user + system). */
  serverCpuCores: number;
  serverCpuUsPerRequest: number;
  /** CPU cores autocannon (the benchmark process) used: it shares the machine with the server. */
  loadGeneratorCpuCores: number;
  /**
   * Busy cores of the whole machine minus the two above: other people's work on this shared machine, plus
   * kernel network work not charged to either process. High values make the cell noisy.
   */
  otherCpuCores: number;
  /** modelgate only: what its batcher did during the cell (from its /metrics). */
  modelgateBatches?: BatchStats;
  /** Measurements taken for this cell (more than 1 when other work made the first ones noisy). */
  attempts: number;
  /** req/s of this cell in every round, in order; the cell itself is the median round. */
  roundsRequestsPerSecond?: number[];
  /** False when any answer was not 2xx or any request failed: the numbers are not comparable. */
  ok: boolean;
}

export const isNoisy = (cell: Cell) => isNoisyLoad(cell.otherCpuCores);

const findCell = (cells: readonly Cell[], server: ServerId, model: ModelName, clients: number) =>
  cells.find((cell) => cell.server === server && cell.model === model && cell.clients === clients);

export function formatTable(cells: readonly Cell[]): string {
  const header = [
    'model',
    'clients',
    'server',
    'req/s',
    'rounds min-max',
    'vs (b)',
    'p50 ms',
    'p99 ms',
    'non2xx',
    'errors',
    'server cores',
    '',
  ];
  const rows = cells.map((cell) => {
    const peer = findCell(cells, 'peer', cell.model, cell.clients);
    const ratio = peer ? `${fmt(cell.requestsPerSecond / peer.requestsPerSecond, 2)}x` : '';
    return [
      cell.model,
      String(cell.clients),
      SERVER_LABELS[cell.server],
      fmt(cell.requestsPerSecond, 0),
      formatRoundsRange(cell.roundsRequestsPerSecond),
      ratio,
      fmt(cell.p50Ms, 2),
      fmt(cell.p99Ms, 2),
      String(cell.non2xx),
      String(cell.errors),
      fmt(cell.serverCpuCores, 2),
      formatNotes(cell.ok ? undefined : 'FAILED REQUESTS', cell.otherCpuCores),
    ];
  });
  return formatRows(header, rows, new Set([0, 2, 11]));
}

/** A target of (d) against (b) on one model at one client count. */
const compare = (
  cells: readonly Cell[],
  target: string,
  model: ModelName,
  clients: number,
  check: (batched: Cell, peer: Cell) => { pass: boolean; detail: string },
) =>
  checkPair(
    target,
    findCell(cells, 'modelgate-batching', model, clients),
    findCell(cells, 'peer', model, clients),
    check,
  );

/**
 * One cell per server, model and clients: the round with the median req/s (the lower middle of an even
 * count), carrying every round's req/s. A fresh process per round catches what varies from one process
 * start to the next (ORT's default thread pool does).
 */
export function medianCells(rounds: readonly Cell[]): Cell[] {
  return medianRounds(rounds, (cell) => `${cell.server} ${cell.model} ${cell.clients}`);
}

/** The issue's targets: (d) against (b). */
export function checkTargets(cells: readonly Cell[]): TargetCheck[] {
  const throughput = (model: ModelName, factor: number) =>
    compare(
      cells,
      `(d) req/s >= ${factor === 1 ? '' : `${factor}x `}(b) req/s on ${model} at 64 clients`,
      model,
      64,
      (batched, peer) => ({
        pass: batched.requestsPerSecond >= factor * peer.requestsPerSecond,
        detail: `(d) ${fmt(batched.requestsPerSecond, 0)} vs (b) ${fmt(peer.requestsPerSecond, 0)} req/s = ${fmt(batched.requestsPerSecond / peer.requestsPerSecond, 2)}x`,
      }),
    );
  const latency = (model: ModelName) =>
    compare(cells, `(d) p50 <= (b) p50 + 1 ms on ${model} at 1 client`, model, 1, (batched, peer) => ({
      pass: batched.p50Ms - peer.p50Ms <= 1,
      detail: `(d) ${fmt(batched.p50Ms, 3)} ms vs (b) ${fmt(peer.p50Ms, 3)} ms (difference ${fmt(batched.p50Ms - peer.p50Ms, 3)} ms)`,
    }));
  return [throughput('iris', 1), throughput('wide-mlp', 2), latency('iris'), latency('wide-mlp')];
}
