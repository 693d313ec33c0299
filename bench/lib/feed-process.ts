/**
 * A live feed in a process of its own, so that producing counts against no measured process: BENCH_EVENTS events
 * of the workload at BENCH_RATE a second to BENCH_TOPIC (which exists), with a steady inventory of BENCH_INVENTORY when
 * set. Prints what produceWorkload returns as JSON.
 */
import { produceWorkload } from './feed.js';

const stack = { brokers: process.env.BENCH_BROKERS!.split(','), registryUrl: process.env.BENCH_REGISTRY_URL! };
const produced = await produceWorkload(stack, process.env.BENCH_TOPIC!, Number(process.env.BENCH_EVENTS), {
  perSecond: Number(process.env.BENCH_RATE), inventory: Number(process.env.BENCH_INVENTORY) || undefined,
});
process.stdout.write(`${JSON.stringify(produced)}\n`);
