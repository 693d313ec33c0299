import { scopeKey, type AwsScope } from '../shared/aws-scope.js';
import type { Logger } from '../shared/logger.js';
import { createProgress } from '../shared/progress.js';

/** Shows how far a long LookupEvents window has been read (CloudTrail answers newest first). */
export function createCatchUpProgress({ logger, interactive, scope, start, end }: { logger: Logger; interactive: boolean; scope: AwsScope; start: number; end: number }) {
  const span = Math.max(1, end - start);
  let events = 0;
  const progress = createProgress({
    interactive, format: `catch-up ${scopeKey(scope)} |{bar}| {percentage}% of the window | {events} events`, total: 100, figures: { events: 0 },
    log: (percent) => logger.info({ ...scope, events, percentOfWindow: percent }, 'catching up on CloudTrail'),
  });
  return {
    page(eventTimes: number[]): void {
      events += eventTimes.length;
      const oldest = eventTimes.length > 0 ? Math.min(...eventTimes) : end;
      progress.update(Math.min(100, Math.round(((end - oldest) / span) * 100)), { events });
    },
    stop(): void {
      // The bar ends full; a log says nothing more than the poll's own lines.
      if (interactive) progress.update(100, { events });
      progress.stop();
    },
  };
}
