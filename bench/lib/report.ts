import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BenchResult {
  name: string;
  size: 'quick' | 'full';
  target: string;
  /** null for a figure with no target (sizing). */
  met: boolean | null;
  /** The headline line for the table: ratio first, absolute figures beside it. */
  summary: string;
  figures: Record<string, unknown>;
  machine: Record<string, unknown>;
  measuredAt: string;
}

const RESULTS = fileURLToPath(new URL('../results/', import.meta.url));

/** Full runs are the reported ones: they go to bench/results/<name>.json; quick runs to <name>.quick.json. */
export function writeResult(result: BenchResult): string {
  mkdirSync(RESULTS, { recursive: true });
  const file = `${RESULTS}${result.name}${result.size === 'quick' ? '.quick' : ''}.json`;
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
