import cliProgress from 'cli-progress';

/** How often progress is logged where no terminal shows a bar. */
const LOG_EVERY_MS = 5000;

export interface Progress {
  /** `value` of the total now, with the bar's other figures. */
  update(value: number, figures?: Record<string, unknown>): void;
  stop(): void;
}

/**
 * Progress of long work: a bar on stderr on a terminal (`format`: cli-progress's, with `{bar}`, `{value}`,
 * `{total}` and the figures' names); otherwise `log` with the same figures, at most every few seconds.
 */
export function createProgress({ interactive, format, total, figures = {}, log }: {
  interactive: boolean; format: string; total: number; figures?: Record<string, unknown>; log: (value: number, figures: Record<string, unknown>) => void;
}): Progress {
  if (interactive) {
    const bar = new cliProgress.SingleBar({ format, hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic);
    bar.start(total, 0, figures);
    return { update: (value, next) => bar.update(value, next), stop: () => bar.stop() };
  }
  let loggedAt = 0;
  return {
    update(value, next = {}) {
      if (Date.now() - loggedAt < LOG_EVERY_MS) return;
      loggedAt = Date.now();
      log(value, next);
    },
    stop: () => undefined,
  };
}
