// Says once that the database cannot be reached and once that it is back, however many calls of a
// process meet the outage: a worker's claims, heartbeats and timers, and its webhook deliveries, meet it
// several times a second.
import type { Logger } from 'pino';
import { isConnectionLoss } from '../store/db.ts';

export class OutageReporter {
  private lost = false;

  constructor(private readonly logger: Logger) {}

  /** Reports a failed call: the database being unreachable once per outage, any other failure each time. */
  failed(error: unknown, message: string): void {
    if (!isConnectionLoss(error)) return void this.logger.warn({ err: error }, message);
    if (this.lost) return;
    this.lost = true;
    this.logger.warn({ err: error }, 'lost the database; trying again with backoff');
  }

  /** A call reached the database. */
  reached(): void {
    if (!this.lost) return;
    this.lost = false;
    this.logger.info('the database is back');
  }
}
