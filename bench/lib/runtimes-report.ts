// The runtimes benchmark's verdict: its setups and their labels, one cell per setup and client count (the
// median of its rounds), the results table as text, and the targets checked against the cells. A cell
// with failed requests is flagged, and a target that depends on one fails rather than trusting it.
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

export const PART_IDS = ['command', 'http', 'large'] as const;
export type PartId = (typeof PART_IDS)[number];

export const SETUP_IDS = [
  'pipe',
  'python-http',
  'modelgate-command',
  'upstream',
  'modelgate-http',
  'upstream-one-thread',
  'modelgate-http-one-thread',
  'in-process',
  'transport-floor',
  'modelgate-binary',
  'modelgate-json',
] as const;
export type SetupId = (typeof SETUP_IDS)[number];

export const SETUPS: Record<SetupId, { part: PartId; label: string }> = {
  pipe: { part: 'command', label: '(a) predict.py over its pipe' },
  'python-http': { part: 'command', label: '(b) hand-written http.server' },
  'modelgate-command': { part: 'command', label: '(c) modelgate command runtime' },
  upstream: { part: 'http', label: 'upstream direct (v2 JSON), ORT defaults' },
  'modelgate-http': { part: 'http', label: 'modelgate http runtime -> it' },
  'upstream-one-thread': { part: 'http', label: 'upstream direct, 1 ORT thread' },
  'modelgate-http-one-thread': { part: 'http', label: 'modelgate http runtime -> it' },
  'in-process': { part: 'large', label: '(i) in-process session.run' },
  'transport-floor': { part: 'large', label: '(0) bare node:http, same bytes, no model' },
  'modelgate-binary': { part: 'large', label: '(ii) modelgate /v2 binary' },
  'modelgate-json': { part: 'large', label: '(iii) modelgate /v2 JSON' },
};

/** What each part's other setups are compared with in the table. */
export const REFERENCE_SETUP: Record<PartId, SetupId> = {
  command: 'python-http',
  http: 'upstream',
  large: 'in-process',
};

export interface Cell {
  part: PartId;
  setup: SetupId;
  clients: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Successful answers (2xx, or a program's `result`). */
  responsesOk: number;
  /** Answered with a failure (non-2xx, or a program's `error`). */
  failed: number;
  /** Requests that got no answer (connection errors, timeouts). */
  errors: number;
  durationSeconds: number;
  /**
   * CPU cores of the serving side during the cell: every process of the setup with everything they started
   * (modelgate with its programs; modelgate and the upstream it calls). For (i) it is the benchmark process.
   */
  serverCpuCores: number;
  serverCpuUsPerRequest: number;
  /** The serving side's cores by process, e.g. {"modelgate": 0.8, "programs": 0.9}. */
  serverCpuCoresByProcess: Record<string, number>;
  /** CPU cores of the benchmark process (the load generator); for (i), 0: the server is this process. */
  loadGeneratorCpuCores: number;
  /** Busy cores of the machine minus the two above: other work on this shared machine. */
  otherCpuCores: number;
  /** modelgate setups: what its batcher did during the cell (from its /metrics). */
  modelgateBatches?: BatchStats;
  /** Measurements taken (more than 1 when other work made the first ones noisy). */
  attempts: number;
  /** req/s of this cell in every round, in order; the cell itself is the median round. */
  roundsRequestsPerSecond?: number[];
  ok: boolean;
}

export const isNoisy = (cell: Cell) => isNoisyLoad(cell.otherCpuCores);

const findCell = (cells: readonly Cell[], setup: SetupId, clients: number) =>
  cells.find((cell) => cell.setup === setup && cell.clients === clients);

/**
 * One cell per setup and clients: the round with the median req/s (the lower middle of an even count),
 * carrying every round's req/s.
 */
export function medianCells(rounds: readonly Cell[]): Cell[] {
  return medianRounds(rounds, (cell) => `${cell.setup} ${cell.clients}`).sort(
    (a, b) =>
      PART_IDS.indexOf(a.part) - PART_IDS.indexOf(b.part) ||
      a.clients - b.clients ||
      SETUP_IDS.indexOf(a.setup) - SETUP_IDS.indexOf(b.setup),
  );
}

/**
 * The http part's upstream configurations: a name, its setups direct and behind modelgate, and the
 * arguments bench/peers/v2-upstream.ts runs with.
 */
export const UPSTREAM_CONFIGURATIONS: readonly {
  name: string;
  direct: SetupId;
  inFront: SetupId;
  args: readonly string[];
}[] = [
  { name: 'ORT defaults', direct: 'upstream', inFront: 'modelgate-http', args: [] },
  {
    name: '1 thread',
    direct: 'upstream-one-thread',
    inFront: 'modelgate-http-one-thread',
    args: ['--threads', '1'],
  },
];

const configurationOf = (setup: SetupId) =>
  UPSTREAM_CONFIGURATIONS.find((c) => c.direct === setup || c.inFront === setup);

/** What a setup is compared with in the table: the upstream it runs in front of, or its part's reference. */
const referenceOf = (setup: SetupId): SetupId =>
  configurationOf(setup)?.direct ?? REFERENCE_SETUP[SETUPS[setup].part];

export function formatTable(cells: readonly Cell[]): string {
  const header = [
    'part',
    'clients',
    'setup',
    'req/s',
    'rounds min-max',
    'req/s vs ref',
    'p50 ms',
    'p50 vs ref',
    'p99 ms',
    'mean ms',
    'failed',
    'server cores',
    'CPU us/req',
    '',
  ];
  const rows = cells.map((cell) => {
    // The part's reference at the same clients; the in-process run has one client only.
    const reference =
      findCell(cells, referenceOf(cell.setup), cell.clients) ??
      (cell.part === 'large' ? findCell(cells, 'in-process', 1) : undefined);
    const isReference = cell.setup === referenceOf(cell.setup);
    return [
      cell.part,
      String(cell.clients),
      SETUPS[cell.setup].label,
      fmt(cell.requestsPerSecond, 0),
      formatRoundsRange(cell.roundsRequestsPerSecond),
      reference && !isReference ? `${fmt(cell.requestsPerSecond / reference.requestsPerSecond, 2)}x` : '',
      fmt(cell.p50Ms, 2),
      reference && !isReference ? `${fmt(cell.p50Ms / reference.p50Ms, 2)}x` : '',
      fmt(cell.p99Ms, 2),
      fmt(cell.meanMs, 2),
      String(cell.failed + cell.errors),
      fmt(cell.serverCpuCores, 2),
      fmt(cell.serverCpuUsPerRequest, 0),
      formatNotes(cell.ok ? undefined : 'FAILED REQUESTS', cell.otherCpuCores),
    ];
  });
  return formatRows(header, rows, new Set([0, 2, 13]));
}

const compare = (
  cells: readonly Cell[],
  target: string,
  subject: [SetupId, number],
  reference: [SetupId, number],
  check: (subject: Cell, reference: Cell) => { pass: boolean; detail: string },
) => checkPair(target, findCell(cells, ...subject), findCell(cells, ...reference), check);

/** The upstream's two configurations: ORT's defaults, and one intra-op thread. */
const DIRECT = UPSTREAM_CONFIGURATIONS.map((c) => c.direct);
const IN_FRONT = UPSTREAM_CONFIGURATIONS.map((c) => c.inFront);

const lowerP50 = (a: Cell, b: Cell) => a.p50Ms < b.p50Ms;
const higherThroughput = (a: Cell, b: Cell) => a.requestsPerSecond > b.requestsPerSecond;

/** Of `setups` at `clients`, the one whose cell `better` prefers (the first when none was measured). */
function best(
  cells: readonly Cell[],
  setups: readonly SetupId[],
  clients: number,
  better: (a: Cell, b: Cell) => boolean,
): SetupId {
  let chosen: Cell | undefined;
  for (const setup of setups) {
    const cell = findCell(cells, setup, clients);
    if (cell && (!chosen || better(cell, chosen))) chosen = cell;
  }
  return chosen?.setup ?? setups[0]!;
}

/** A check whose detail says which configuration each side was taken at. */
const labelled =
  (check: (subject: Cell, reference: Cell) => { pass: boolean; detail: string }) =>
  (subject: Cell, reference: Cell) => {
    const { pass, detail } = check(subject, reference);
    const configuration = (cell: Cell) => configurationOf(cell.setup)?.name;
    return {
      pass,
      detail: `${detail}; upstream at ${configuration(subject)} in front, ${configuration(reference)} direct`,
    };
  };

const throughputAtLeast = (factor: number) => (subject: Cell, reference: Cell) => ({
  pass: subject.requestsPerSecond >= factor * reference.requestsPerSecond,
  detail: `${fmt(subject.requestsPerSecond, 0)} vs ${fmt(reference.requestsPerSecond, 0)} req/s = ${fmt(subject.requestsPerSecond / reference.requestsPerSecond, 3)}x`,
});

const p50WithinMs = (ms: number) => (subject: Cell, reference: Cell) => ({
  pass: subject.p50Ms - reference.p50Ms <= ms,
  detail: `${fmt(subject.p50Ms, 3)} vs ${fmt(reference.p50Ms, 3)} ms (difference ${fmt(subject.p50Ms - reference.p50Ms, 3)} ms)`,
});

export function checkTargets(cells: readonly Cell[]): TargetCheck[] {
  return [
    compare(
      cells,
      '(c) req/s >= 1.5x (b) at 64 clients',
      ['modelgate-command', 64],
      ['python-http', 64],
      throughputAtLeast(1.5),
    ),
    compare(
      cells,
      '(c) p50 <= (b) p50 + 1 ms at 1 client',
      ['modelgate-command', 1],
      ['python-http', 1],
      p50WithinMs(1),
    ),
    // The upstream runs in two configurations; each side is taken at its best one (the upstream direct
    // at its lowest p50 or highest req/s, modelgate in front at its own).
    compare(
      cells,
      'modelgate in front adds <= 1 ms p50 at 1 client (best of each)',
      [best(cells, IN_FRONT, 1, lowerP50), 1],
      [best(cells, DIRECT, 1, lowerP50), 1],
      labelled(p50WithinMs(1)),
    ),
    compare(
      cells,
      "modelgate in front >= 2x the upstream's own req/s at 64 clients (best of each)",
      [best(cells, IN_FRONT, 64, higherThroughput), 64],
      [best(cells, DIRECT, 64, higherThroughput), 64],
      labelled(throughputAtLeast(2)),
    ),
    compare(
      cells,
      '(ii) binary p50 <= 1.3x (i) in-process p50 at 1 client',
      ['modelgate-binary', 1],
      ['in-process', 1],
      (binary, inProcess) => ({
        pass: binary.p50Ms <= 1.3 * inProcess.p50Ms,
        detail:
          `${fmt(binary.p50Ms, 3)} vs ${fmt(inProcess.p50Ms, 3)} ms = ${fmt(binary.p50Ms / inProcess.p50Ms, 3)}x ` +
          `(mean ${fmt(binary.meanMs / inProcess.meanMs, 2)}x)`,
      }),
    ),
  ];
}
