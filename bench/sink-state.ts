/**
 * Sizing: the memory the sink holds per live integration of its partitions (the applied state it compares every
 * event with), against its after-image's Avro bytes: the least that keeping each last image takes. No target: the
 * issue sets none, and the figure is for choosing a machine (or a heap limit) for an inventory.
 */
import { machine, tenths } from './lib/environment.js';
import { runJsonScript } from './lib/json-script.js';
import type { BenchResult } from './lib/report.js';

interface Held {
  integrations: number;
  heapBytes: number;
  imageBytes: number;
}

export async function runSinkState(registryUrl: string, quick: boolean): Promise<BenchResult> {
  const held = await runJsonScript<Held>('lib/held-state.ts', { BENCH_REGISTRY_URL: registryUrl, BENCH_INTEGRATIONS: String(quick ? 10_000 : 100_000) });
  const perIntegration = Math.round(held.heapBytes / held.integrations);
  const imagePerIntegration = Math.round(held.imageBytes / held.integrations);
  const per100k = Math.round((perIntegration * 100_000) / 2 ** 20);
  return {
    name: 'sink-state',
    size: quick ? 'quick' : 'full',
    measuredAt: new Date().toISOString(),
    machine: await machine(),
    target: 'none (sizing): heap the sink holds per live integration',
    met: null,
    summary: `${tenths(perIntegration / imagePerIntegration)} times its after-image's Avro bytes; ${perIntegration} bytes of heap per live integration (${per100k} MiB per 100,000) against ${imagePerIntegration} bytes of Avro; ${held.integrations} integrations`,
    figures: { ...held, perIntegration, imagePerIntegration, mibPer100k: per100k },
  };
}
