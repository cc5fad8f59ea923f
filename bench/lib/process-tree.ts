// CPU of a process together with everything it started (modelgate and its programs' processes), from
// Linux /proc: a child's CPU shows in its parent's /proc/<pid>/stat only once it has exited and been
// waited for, so a running program's work has to be counted on its own.
import { readdirSync, readFileSync } from 'node:fs';
import { readProcessCpuSeconds } from './cpu.ts';

/** The parent pid of every process now running (Linux); empty elsewhere. */
function readParentPids(): Map<number, number> {
  const parents = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return parents;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The field after the command name (which may hold spaces) and the state is the parent pid.
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // Gone since the listing.
    }
  }
  return parents;
}

/** The pids of a process's children, grandchildren and so on, now. */
export function readDescendantPids(pid: number): number[] {
  const parents = readParentPids();
  const found: number[] = [];
  let generation = [pid];
  while (generation.length > 0) {
    const next = [...parents].filter(([, parent]) => generation.includes(parent)).map(([child]) => child);
    found.push(...next);
    generation = next;
  }
  return found;
}

export interface TreeCpu {
  /** CPU seconds of the process itself. */
  own: number;
  /** Each descendant running now, by pid: its command name (e.g. "python3") and CPU seconds. */
  descendants: Map<number, { name: string; seconds: number }>;
}

function readCommandName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** User + system CPU seconds of a process and of each of its running descendants; undefined off Linux. */
export function readTreeCpuSeconds(pid: number): TreeCpu | undefined {
  const own = readProcessCpuSeconds(pid);
  if (own === undefined) return undefined;
  const descendants: TreeCpu['descendants'] = new Map();
  for (const child of readDescendantPids(pid)) {
    const seconds = readProcessCpuSeconds(child);
    if (seconds !== undefined) descendants.set(child, { name: readCommandName(child), seconds });
  }
  return { own, descendants };
}

/**
 * CPU seconds the tree spent between two readings: the process's own, and its descendants' by command
 * name (only those present in both readings: a program restarted in between is left out, not counted
 * from zero).
 */
export function treeCpuBetween(
  before: TreeCpu,
  after: TreeCpu,
): { own: number; descendants: Record<string, number> } {
  const descendants: Record<string, number> = {};
  for (const [pid, { name, seconds }] of after.descendants) {
    const earlier = before.descendants.get(pid);
    if (earlier !== undefined) descendants[name] = (descendants[name] ?? 0) + seconds - earlier.seconds;
  }
  return { own: after.own - before.own, descendants };
}
