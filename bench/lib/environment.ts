import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { queryRows, type ClickHouseClient } from '../../services/shared/clickhouse.js';
import { KAFKA_VERSION } from '../../stack/layout.js';

/** What a result was measured on, written beside every figure. */
export async function machine(clickhouse?: ClickHouseClient) {
  const version = clickhouse ? (await queryRows<{ v: string }>(clickhouse, 'SELECT version() AS v'))[0]!.v : undefined;
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kafka: KAFKA_VERSION,
    clickhouse: version ? `chDB ${version}` : undefined,
  };
}

/** Resident memory of a process in MiB, from /proc. */
function residentMiB(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
    return line ? Number(line.replace(/\D+/g, '')) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Samples a process's resident memory every second until stopped. */
export function sampleMemory(pid: number) {
  const samples: { atSeconds: number; rssMiB: number }[] = [];
  const started = Date.now();
  const timer = setInterval(() => {
    const rss = residentMiB(pid);
    if (rss !== undefined) samples.push({ atSeconds: Math.round((Date.now() - started) / 1000), rssMiB: Math.round(rss) });
  }, 1000);
  return {
    stop() {
      clearInterval(timer);
      const peak = (list: typeof samples) => Math.max(0, ...list.map((s) => s.rssMiB));
      const last = samples.at(-1)?.atSeconds ?? 0;
      // A minute each, or a third of a run shorter than three minutes: two windows that overlap say nothing.
      const windowSeconds = Math.max(1, Math.min(60, Math.floor(last / 3)));
      const firstWindow = samples.filter((s) => s.atSeconds <= windowSeconds);
      const lastWindow = samples.filter((s) => s.atSeconds > last - windowSeconds);
      return {
        samples,
        peakMiB: peak(samples),
        windowSeconds,
        firstWindowPeakMiB: peak(firstWindow),
        lastWindowPeakMiB: peak(lastWindow),
        /** the last window's peak over the first window's: 1.0 is flat */
        lastOverFirst: Math.round((peak(lastWindow) / Math.max(1, peak(firstWindow))) * 100) / 100,
        secondsSampled: last,
      };
    },
  };
}

export const rate = (count: number, ms: number) => Math.round(count / (ms / 1000));
export const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
