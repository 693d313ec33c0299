/**
 * `npm run bench [-- --quick] [-- --only name,name]`: every benchmark beside its baseline in the same run, on the
 * real stack. Writes bench/results/<name>.json (quick runs: <name>.quick.json) and prints a table.
 *
 * The sink benchmark takes BENCH_SINK_EVENTS (events; full size 1M), BENCH_SINK_RUNS (rounds of sink and
 * baselines; full size 3), BENCH_SINK_NODE_ARGS (node flags for the sink, e.g. --cpu-prof) and
 * BENCH_SINK_LOG_LEVEL (the sink's log level, its logs on stdout).
 */
import { stackPorts } from '../services/shared/config.js';
import { stackUp } from '../stack/index.js';
import { motoPart, registryPart } from '../stack/parts.js';
import { writeResult, type BenchResult } from './lib/report.js';
import { runChangeLatency } from './change-latency.js';
import { runCodec } from './codec.js';
import { runSinkLive } from './sink-live.js';
import { runSinkState } from './sink-state.js';
import { runSinkThroughput } from './sink-throughput.js';
import { runSnapshotBench } from './snapshot.js';

// As in bin/apigw-stream.js: the SDK's notice about its future Node 22 floor is said once, in the README.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.find((arg) => arg.startsWith('--only='))?.slice('--only='.length).split(',');

await stackUp((line) => process.stderr.write(`stack: ${line}\n`));
const ports = stackPorts();
const stack = { brokers: [`127.0.0.1:${ports.kafka}`], registryUrl: registryPart(ports.registry).endpoint, motoEndpoint: motoPart(ports.moto).endpoint };

const suites: Record<string, () => Promise<BenchResult[]>> = {
  codec: () => runCodec(stack.registryUrl, quick),
  sink: () => runSinkThroughput(stack, quick),
  snapshot: () => runSnapshotBench(stack, quick),
  latency: () => runChangeLatency(stack, quick),
  live: () => runSinkLive(stack, quick),
  state: async () => [await runSinkState(stack.registryUrl, quick)],
};

const results: BenchResult[] = [];
for (const [name, suite] of Object.entries(suites)) {
  if (only && !only.includes(name)) continue;
  const started = Date.now();
  for (const result of await suite()) {
    results.push(result);
    process.stderr.write(`${result.name}: ${result.summary} (${writeResult(result)})\n`);
  }
  process.stderr.write(`${name}: ${Math.round((Date.now() - started) / 1000)} s\n`);
}

const width = Math.max(...results.map((r) => r.name.length));
process.stdout.write(`\n${'benchmark'.padEnd(width)}  target met  result (${quick ? 'quick size: checks the suite works; the full size is the one we report' : 'full size'})\n`);
for (const r of results) process.stdout.write(`${r.name.padEnd(width)}  ${(r.met === null ? '-' : r.met ? 'yes' : 'NO').padEnd(10)}  ${r.summary}\n`);
process.exit(0);
