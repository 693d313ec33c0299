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
    memoryGiB: tenths(totalmem() / 2 ** 30),
    node: process.version,
    kafka: KAFKA_VERSION,
    clickhouse: version ? `chDB ${version}` : undefined,
  };
}

/** A reader of a live process's /proc status fields counted in kB (VmRSS, RssAnon, VmHWM), in MiB; NaN when absent. */
function statusMiB(pid: number): (name: string) => number {
  const lines = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n');
  return (name) => Number(lines.find((l) => l.startsWith(`${name}:`))?.replace(/\D+/g, '') ?? NaN) / 1024;
}

/** A process's resident memory in MiB, from /proc: all of it, and the anonymous part (not pages of mapped files). */
function residentMiB(pid: number): { rss: number; anon: number } | undefined {
  try {
    const field = statusMiB(pid);
    const rss = field('VmRSS');
    return Number.isNaN(rss) ? undefined : { rss, anon: field('RssAnon') };
  } catch {
    return undefined;
  }
}

/** The most resident memory a live process has had (VmHWM), in MiB: its exact peak, between samples too. */
export function highWaterMiB(pid: number): number {
  return Math.round(statusMiB(pid)('VmHWM'));
}

// Linux reports process times in clock ticks of 1/100 s on every architecture Node supports.
const TICKS_PER_SECOND = 100;

/** CPU seconds (user and system, all threads) a live process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/**
 * How long a live process's main thread has run on a core so far, and how long it waited, runnable, for one
 * (/proc schedstat, kept by kernels with scheduler statistics); undefined where the kernel does not keep them.
 */
export function mainThreadSchedule(pid: number): { ranSeconds: number; waitedForCoreSeconds: number } | undefined {
  try {
    const [ran, waited] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
    return { ranSeconds: tenths(ran! / 1e9), waitedForCoreSeconds: tenths(waited! / 1e9) };
  } catch {
    return undefined;
  }
}

/** This process's CPU seconds so far (every thread), to difference around a measured section. */
export const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Samples a process's resident memory every second until stopped; its timer does not keep the benchmark running. */
export function sampleMemory(pid: number) {
  const samples: { atSeconds: number; rssMiB: number; anonMiB: number }[] = [];
  const started = Date.now();
  const timer = setInterval(() => {
    const resident = residentMiB(pid);
    if (resident) samples.push({ atSeconds: Math.round((Date.now() - started) / 1000), rssMiB: Math.round(resident.rss), anonMiB: Math.round(resident.anon) });
  }, 1000).unref();
  return {
    stop() {
      clearInterval(timer);
      const peak = (list: typeof samples) => Math.max(0, ...list.map((s) => s.rssMiB));
      const peakSample = samples.reduce((top, s) => (s.rssMiB > top.rssMiB ? s : top), { rssMiB: 0, anonMiB: 0 });
      const last = samples.at(-1)?.atSeconds ?? 0;
      // A minute each, or a third of a run shorter than three minutes: two windows that overlap say nothing.
      const windowSeconds = Math.max(1, Math.min(60, Math.floor(last / 3)));
      const firstWindow = samples.filter((s) => s.atSeconds <= windowSeconds);
      const lastWindow = samples.filter((s) => s.atSeconds > last - windowSeconds);
      const afterStart = samples.filter((s) => s.atSeconds > windowSeconds).map((s) => s.rssMiB);
      const windowMedians: number[] = [];
      for (let end = windowSeconds; end <= last; end += windowSeconds) {
        windowMedians.push(median(samples.filter((s) => s.atSeconds > end - windowSeconds && s.atSeconds <= end).map((s) => s.rssMiB)) ?? 0);
      }
      return {
        samples,
        peakMiB: peakSample.rssMiB,
        /** The anonymous part of the peak sample; the rest are pages of mapped files (program and libraries). */
        anonMiBAtPeak: peakSample.anonMiB,
        /** The steady level: the median sample after the first window (start-up). */
        steadyMiB: median(afterStart) ?? peakSample.rssMiB,
        windowSeconds,
        /** The median sample of each whole window in turn: a level that keeps rising is growth, not a spike. */
        windowMediansMiB: windowMedians,
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
/** Rounded to one decimal: seconds, CPU seconds, GiB. */
export const tenths = (value: number) => Math.round(value * 10) / 10;
export const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
