import cliProgress from 'cli-progress';
import { scopeKey, type AwsScope } from '../shared/aws-scope.js';
import type { Logger } from '../shared/logger.js';

/** Shows how far a long LookupEvents window has been read (CloudTrail answers newest first). */
export function createCatchUpProgress({ logger, interactive, scope, start, end }: { logger: Logger; interactive: boolean; scope: AwsScope; start: number; end: number }) {
  const span = Math.max(1, end - start);
  let events = 0;
  let lastLog = 0;
  const bar = interactive
    ? new cliProgress.SingleBar({ format: `catch-up ${scopeKey(scope)} |{bar}| {percentage}% of the window | {events} events`, stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined;
  bar?.start(100, 0, { events: 0 });
  return {
    page(eventTimes: number[]): void {
      events += eventTimes.length;
      const oldest = eventTimes.length > 0 ? Math.min(...eventTimes) : end;
      const percent = Math.min(100, Math.round(((end - oldest) / span) * 100));
      bar?.update(percent, { events });
      if (!bar && Date.now() - lastLog > 5000) {
        lastLog = Date.now();
        logger.info({ ...scope, events, percentOfWindow: percent }, 'catching up on CloudTrail');
      }
    },
    stop(): void {
      bar?.update(100, { events });
      bar?.stop();
    },
  };
}
