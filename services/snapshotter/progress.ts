import cliProgress from 'cli-progress';
import type { Logger } from '../shared/logger.js';

export interface SnapshotProgress {
  addApis(count: number): void;
  apiDone(integrations: number): void;
  stop(): void;
}

/** A bar on a terminal; a log line every few seconds otherwise. */
export function createSnapshotProgress({ logger, interactive }: { logger: Logger; interactive: boolean }): SnapshotProgress {
  let apisTotal = 0;
  let apisDone = 0;
  let integrations = 0;
  const startedAt = Date.now();
  const rate = () => Math.round((integrations / Math.max(1, Date.now() - startedAt)) * 1000);

  if (interactive) {
    const bar = new cliProgress.SingleBar(
      { format: 'snapshot |{bar}| {value}/{total} APIs | {integrations} integrations | {rate} integrations/s', hideCursor: true, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    bar.start(0, 0, { integrations: 0, rate: 0 });
    return {
      addApis(count) {
        apisTotal += count;
        bar.setTotal(apisTotal);
      },
      apiDone(count) {
        apisDone++;
        integrations += count;
        bar.update(apisDone, { integrations, rate: rate() });
      },
      stop: () => bar.stop(),
    };
  }

  const log = logger.child({ component: 'snapshot-progress' });
  const timer = setInterval(() => log.info({ apisDone, apisTotal, integrations, integrationsPerSecond: rate() }, 'snapshot progress'), 5000);
  timer.unref();
  return {
    addApis(count) {
      apisTotal += count;
    },
    apiDone(count) {
      apisDone++;
      integrations += count;
    },
    stop: () => clearInterval(timer),
  };
}
