// Says once that the database cannot be reached and once that it is back, however many calls of a
// process meet the outage: a worker's claims, heartbeats and timers, and its webhook deliveries, meet it
// several times a second. Calls overlap its edges: one that started before an edge and ends after it
// tells of the state before, and is not taken for a new change.
import type { Logger } from 'pino';
import { isConnectionLoss } from '../store/db.ts';

export class OutageReporter {
  /** When the loss was reported (performance.now()); undefined while the database is reachable. */
  private lostAtMs: number | undefined;
  /** When the database was last reported back. */
  private backAtMs = -Infinity;

  constructor(private readonly logger: Logger) {}

  /**
   * Reports a failed call that started at `startedAtMs` (performance.now()): the database being
   * unreachable once per outage, any other failure each time.
   */
  failed(error: unknown, message: string, startedAtMs: number): void {
    if (!isConnectionLoss(error)) return void this.logger.warn({ err: error }, message);
    if (this.lostAtMs !== undefined || startedAtMs < this.backAtMs) return;
    this.lostAtMs = performance.now();
    this.logger.warn({ err: error }, 'lost the database; trying again with backoff');
  }

  /** A call that started at `startedAtMs` (performance.now()) reached the database. */
  reached(startedAtMs: number): void {
    if (this.lostAtMs === undefined || startedAtMs < this.lostAtMs) return;
    this.lostAtMs = undefined;
    this.backAtMs = performance.now();
    this.logger.info('the database is back');
  }
}
