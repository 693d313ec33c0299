/**
 * Benchmarks 1 and 2: sink throughput and memory, against a bare decoding consumer and a bare bulk insert over
 * the same data, in the same run.
 */
import { rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { STACK_DIR } from '../stack/layout.js';
import { startClickHouseServer, stopClickHouseServer } from '../test/support/clickhouse-server-process.js';
import { deleteTopicsStartingWith } from '../test/support/topics.js';
import { brokerPid, decodingConsumer } from './lib/decoding-consumer.js';
import { cpuSeconds, highWaterMiB, mainThreadSchedule, rate, ratio, sampleMemory, tenths } from './lib/environment.js';
import { PARTITIONS, createBenchTopic, produceWorkload, type BenchStack } from './lib/feed.js';
import { runJsonScript, type ScriptProcess } from './lib/json-script.js';
import type { BenchResult } from './lib/report.js';
import { spawnSink, verifiedTables, waitForCommits } from './lib/sink-process.js';

/** The target: the sink at this fraction of the slower baseline's rate, or better. */
const TARGET_RATIO = 0.7;

const decodeBaseline = async (stack: BenchStack, topic: string, events: number, group: string) => (await decodingConsumer(stack, topic, events, group)).run();

/**
 * Runs a baseline in a process of its own (one chDB data directory per process, removed after) and returns the
 * figures it prints as its last line of JSON.
 */
async function runBaseline<T>(script: string, id: string, env: NodeJS.ProcessEnv, started?: (child: ScriptProcess) => void): Promise<T> {
  const path = join(STACK_DIR, 'bench-data', id);
  try {
    return await runJsonScript<T>(`baselines/${script}`, { ...env, BENCH_CHDB_PATH: path, BENCH_DATABASE: 'bench' }, started);
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
}

/**
 * `blocksDir`: where the baseline leaves the rows in the sink's block sizes, for engineMemoryBaseline. `onReady`: the
 * baseline waits, its rows serialized, until this is called to start its clock beside something else.
 */
function bulkInsertBaseline(events: number, id: string, { blocksDir, onReady }: { blocksDir?: string; onReady?: () => void } = {}) {
  return runBaseline<{ ms: number; cpuSeconds: number; currentRows: number; historyRows: number }>('bulk-insert.ts', `${id}-insert`, {
    BENCH_EVENTS: String(events), ...(blocksDir ? { BENCH_BLOCKS_DIR: blocksDir } : {}), ...(onReady ? { BENCH_START_ON_STDIN: '1' } : {}),
    // The engine as chDB ships it, the fastest it writes: the allocator setting the sink runs with trades ~9% of
    // the engine's write speed for memory (see services/shared/engine-allocator.ts); the baseline does not pay it.
    JE_MALLOC_CONF: '',
  }, onReady && ((child) => {
    const onOutput = (chunk: Buffer) => {
      if (!String(chunk).includes('ready')) return;
      child.stdout.off('data', onOutput);
      child.stdin.end('go\n');
      onReady();
    };
    child.stdout.on('data', onOutput);
  }));
}

/**
 * Both baselines at once, on the same cores: the decoding consumer in this process, connected first and started the
 * moment the bulk insert (in its own process) has its rows ready and starts too. A sink reads what the one reads and
 * writes what the other writes, so until both are done is about the least time a sink takes on this machine (not
 * strictly: the sink does not decode most re-reads in full), measured rather than computed from CPU seconds as
 * `ceiling` is.
 */
async function bothBaselinesAtOnce(stack: BenchStack, topic: string, events: number, id: string, run: number) {
  const decoder = await decodingConsumer(stack, topic, events, `decode-beside-insert.${run}`);
  let startDecoding!: () => void;
  const decoding = new Promise<void>((resolve) => (startDecoding = resolve)).then(decoder.run);
  const [insert, decode] = await Promise.all([bulkInsertBaseline(events, `${id}-${run}-both`, { onReady: startDecoding }), decoding]);
  return { ms: Math.max(decode.ms, insert.ms), decodeMs: decode.ms, insertMs: insert.ms };
}

/** The engine alone writing the sink's rows in the sink's block sizes, its resident memory sampled as the sink's is. */
async function engineMemoryBaseline(blocksDir: string, id: string) {
  let memory: ReturnType<typeof sampleMemory> | undefined;
  const { highWaterMiB } = await runBaseline<{ highWaterMiB: number }>('engine-memory.ts', `${id}-engine`, { BENCH_BLOCKS_DIR: blocksDir }, (child) => {
    memory = sampleMemory(child.pid);
  });
  return { ...memory!.stop(), highWaterMiB };
}

/** The sink as users run it, writing to `clickhouseUrl`, timed from its start until its group has committed every offset. */
async function runSink(stack: BenchStack, topic: string, groupId: string, clickhouseUrl: string) {
  const started = performance.now();
  const { sink, exited } = spawnSink(stack, topic, groupId, clickhouseUrl);
  const memory = sampleMemory(sink.pid!);
  const admin = new Kafka({ brokers: stack.brokers, logLevel: logLevel.NOTHING }).admin();
  // Whatever happens here, the sink does not outlive the benchmark.
  try {
    const brokerBefore = cpuSeconds(brokerPid());
    await admin.connect();
    await waitForCommits(admin, sink, groupId, topic, await admin.fetchTopicOffsets(topic));
    const ms = performance.now() - started;
    const rss = { ...memory.stop(), highWaterMiB: highWaterMiB(sink.pid!) };
    const cpu = { cpuSeconds: cpuSeconds(sink.pid!), brokerCpuSeconds: cpuSeconds(brokerPid()) - brokerBefore };
    return { ms, rss, ...cpu, mainThread: mainThreadSchedule(sink.pid!) };
  } finally {
    await admin.disconnect();
    if (sink.exitCode === null) sink.kill('SIGTERM');
    await exited;
  }
}

/**
 * The sink against a ClickHouse server instead (CLICKHOUSE_URL=http://…): the test server, the same engine behind the
 * HTTP interface in a process of its own, so the sink's process holds no engine. What the sink costs where the
 * engine runs elsewhere; its speed is the test server's (one request at a time), not a server's.
 */
async function runSinkAgainstServer(stack: BenchStack, topic: string, id: string, expected: { live: number; historyRows: number }) {
  const path = join(STACK_DIR, 'bench-data', `${id}-server`);
  const { server, url } = await startClickHouseServer(path);
  let sink;
  let serverHighWaterMiB;
  try {
    sink = await runSink(stack, topic, `${topic}.sink.server`, url);
    serverHighWaterMiB = highWaterMiB(server.pid!);
  } finally {
    await stopClickHouseServer(server);
  }
  await verifiedTables(path, expected);
  return { ...sink, serverHighWaterMiB };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
/** The item with the greatest `value` (the first of equals). */
const highestBy = <T>(items: T[], value: (item: T) => number) => items.reduce((top, item) => (value(item) > value(top) ? item : top));

/**
 * The sink and both baselines over the same events, `runs` times in turn (full size: 3), so that a slow minute of
 * the machine falls on all three alike; rates are reported as the median run's, with every run beside them.
 */
export async function runSinkThroughput(stack: BenchStack, quick: boolean): Promise<BenchResult[]> {
  const events = Number(process.env.BENCH_SINK_EVENTS) || (quick ? 20_000 : 1_000_000);
  const runs = Number(process.env.BENCH_SINK_RUNS) || (quick ? 1 : 3);
  const id = `bench-${Date.now().toString(36)}`;
  const topic = `bench.sink.${id}`;
  process.stderr.write(`sink throughput: producing ${events} events to ${topic} (${PARTITIONS} partitions)\n`);
  await createBenchTopic(stack, topic);
  const { summary, bytesPerEvent } = await produceWorkload(stack, topic, events);
  const blocksDir = join(STACK_DIR, 'bench-data', `${id}-blocks`);
  const measured = [];
  let againstServer!: Awaited<ReturnType<typeof runSinkAgainstServer>>;
  // A failed round leaves neither its topic nor the rows' files (hundreds of MB) behind.
  try {
    for (let run = 1; run <= runs; run++) {
      process.stderr.write(`sink throughput: run ${run} of ${runs}: bare decoding consumer, bare bulk insert, both at once, the engine's memory alone, apigw-stream sink\n`);
      const decode = await decodeBaseline(stack, topic, events, `decode-baseline.${run}`);
      // The same rows every run: the first leaves them for the engine-memory baseline.
      const insert = await bulkInsertBaseline(events, `${id}-${run}`, { blocksDir: run === 1 ? blocksDir : undefined });
      const both = await bothBaselinesAtOnce(stack, topic, events, id, run);
      const engineAlone = await engineMemoryBaseline(blocksDir, `${id}-${run}`);
      const sinkPath = join(STACK_DIR, 'bench-data', `${id}-sink-${run}`);
      const sink = await runSink(stack, topic, `${topic}.sink.${run}`, `chdb://${sinkPath}`);
      const tables = await verifiedTables(sinkPath, summary);
      const [sinkRate, decodeRate, insertRate, bothRate] = [rate(events, sink.ms), rate(events, decode.ms), rate(events, insert.ms), rate(events, both.ms)];
      // The sink does both baselines' work on the same cores (and the broker serves it there too). Even spread
      // perfectly over every core, that work alone takes this long: the fastest any sink could be on this machine.
      const bothBaselinesCpu = decode.cpuSeconds + decode.brokerCpuSeconds + insert.cpuSeconds;
      const ceilingRate = rate(events, (bothBaselinesCpu / cpus().length) * 1000);
      const slower = Math.min(decodeRate, insertRate);
      // At the target the sink has this long, so the cores give this many CPU seconds to it and the broker together.
      const secondsAtTarget = events / (slower * TARGET_RATIO);
      measured.push({
        tables,
        rss: sink.rss,
        engineAlone,
        figures: {
          sink: {
            ms: Math.round(sink.ms), eventsPerSecond: sinkRate, cpuSeconds: tenths(sink.cpuSeconds), brokerCpuSeconds: tenths(sink.brokerCpuSeconds),
            /** Its JavaScript thread: the time it ran, and the time it was ready to run but every core was busy. */
            mainThread: sink.mainThread,
          },
          decodeBaseline: { ms: Math.round(decode.ms), eventsPerSecond: decodeRate, cpuSeconds: tenths(decode.cpuSeconds), brokerCpuSeconds: tenths(decode.brokerCpuSeconds) },
          bulkInsertBaseline: {
            ms: Math.round(insert.ms), eventsPerSecond: insertRate, cpuSeconds: tenths(insert.cpuSeconds), currentRows: insert.currentRows, historyRows: insert.historyRows,
          },
          ratioToSlowerBaseline: ratio(sinkRate, slower),
          /** Both baselines' CPU seconds (and the broker's) over the machine's cores: the bound of any sink here. */
          ceiling: { eventsPerSecond: ceilingRate, ratioToSlowerBaseline: ratio(ceilingRate, slower), cpuSeconds: tenths(bothBaselinesCpu) },
          /** Both baselines run at once: until both are done, and the sink's time over that. */
          bothAtOnce: {
            ms: Math.round(both.ms), eventsPerSecond: bothRate, ratioToSlowerBaseline: ratio(bothRate, slower),
            decodeMs: Math.round(both.decodeMs), insertMs: Math.round(both.insertMs), sinkTimeOverIt: ratio(sink.ms, both.ms),
          },
          /** The CPU seconds every core together gives in the time the target allows, against what the sink and the broker used. */
          atTarget: {
            seconds: tenths(secondsAtTarget), cpuSecondsOfAllCores: tenths(secondsAtTarget * cpus().length), sinkAndBrokerCpuSeconds: tenths(sink.cpuSeconds + sink.brokerCpuSeconds),
          },
        },
      });
    }
    process.stderr.write('sink throughput: the sink against a ClickHouse server (the test server: the engine in a process of its own)\n');
    againstServer = await runSinkAgainstServer(stack, topic, id, summary);
  } finally {
    rmSync(blocksDir, { recursive: true, force: true });
    // Best effort: a broker that went away must not hide why the round failed.
    await deleteTopicsStartingWith(stack.brokers, topic).catch(() => undefined);
  }

  // The run whose ratio is the median one: its sink and baselines ran side by side.
  const medianRatio = median(measured.map((m) => m.figures.ratioToSlowerBaseline));
  const typical = measured.find((m) => m.figures.ratioToSlowerBaseline === medianRatio)!;
  const { sink, decodeBaseline: decode, bulkInsertBaseline: insert, ceiling, bothAtOnce, atTarget } = typical.figures;
  const sinkRate = median(measured.map((m) => m.figures.sink.eventsPerSecond));
  const ofRuns = (values: number[]) => (runs === 1 ? '' : ` (median of ${runs} runs: ${Math.min(...values)}-${Math.max(...values)})`);
  // Memory: the run that peaked highest, and the least flat one.
  const highest = highestBy(measured, (m) => m.rss.peakMiB).rss;
  const leastFlat = Math.max(...measured.map((m) => m.rss.lastOverFirst));
  // Exact peaks (VmHWM) compared: the engine alone may end between two samples.
  const sinkHighWater = Math.max(...measured.map((m) => m.rss.highWaterMiB));
  const engineAlone = highestBy(measured, (m) => m.engineAlone.highWaterMiB).engineAlone;
  const env = typical.tables.env;
  const measuredAt = new Date().toISOString();
  const size = quick ? 'quick' as const : 'full' as const;
  return [
    {
      name: 'sink-throughput', size, measuredAt, machine: env,
      target: `>= 50,000 events/s and >= ${TARGET_RATIO} of the slower baseline`,
      met: sinkRate >= 50_000 && medianRatio >= TARGET_RATIO,
      summary: `${medianRatio} of the slower baseline${ofRuns(measured.map((m) => m.figures.ratioToSlowerBaseline))}; `
        + `sink ${sinkRate} events/s${ofRuns(measured.map((m) => m.figures.sink.eventsPerSecond))}, decode-only ${decode.eventsPerSecond}/s, bulk insert ${insert.eventsPerSecond}/s; `
        + `both baselines' CPU spread over ${cpus().length} cores would allow at most ${ceiling.eventsPerSecond}/s (${ceiling.ratioToSlowerBaseline}); `
        + `both run at once took ${bothAtOnce.ms} ms, ${bothAtOnce.eventsPerSecond}/s (${bothAtOnce.ratioToSlowerBaseline}), the sink ${bothAtOnce.sinkTimeOverIt} times as long; `
        + `at ${TARGET_RATIO} the cores give ${atTarget.cpuSecondsOfAllCores} CPU-s, the sink and broker used ${atTarget.sinkAndBrokerCpuSeconds}`,
      figures: {
        events, bytesPerEvent, workload: summary, runs,
        medianSinkEventsPerSecond: sinkRate,
        ratioToSlowerBaseline: medianRatio,
        medianRun: { sink, decodeBaseline: decode, bulkInsertBaseline: insert, ceiling, bothAtOnce, atTarget },
        everyRun: measured.map((m) => m.figures),
        tablesVerified: typical.tables.counts,
      },
    },
    {
      name: 'sink-memory', size, measuredAt, machine: env,
      target: 'peak RSS < 512 MB, and flat (the last minute\'s peak within 10% of the first minute\'s; thirds of a run under 3 minutes)',
      // The exact peak too: a run shorter than a few samples (the quick size) can peak between two of them.
      met: highest.peakMiB < 512 && sinkHighWater < 512 && leastFlat <= 1.1,
      summary: `peak ${highest.peakMiB} MiB${runs === 1 ? '' : `, the highest of ${runs} runs`} (${highest.anonMiBAtPeak} MiB of it anonymous, the rest mapped program and library files), steady ${highest.steadyMiB} MiB; `
        + `last window's peak over the first's ${runs === 1 ? leastFlat : `at most ${leastFlat} (every run: ${measured.map((m) => m.rss.lastOverFirst).join(', ')})`} (windows of ${highest.windowSeconds} s over ${highest.secondsSampled} s); `
        + `exact peaks: the sink ${sinkHighWater} MiB, the engine alone writing the same rows in the sink's block sizes ${engineAlone.highWaterMiB} MiB (the sink ${ratio(sinkHighWater, engineAlone.highWaterMiB)} of it); `
        + `against a ClickHouse server (the engine in a process of its own) the sink peaked at ${againstServer.rss.peakMiB} MiB (exact ${againstServer.rss.highWaterMiB}), steady ${againstServer.rss.steadyMiB}, the server ${againstServer.serverHighWaterMiB}`,
      figures: {
        ...highest, lastOverFirstOfEveryRun: measured.map((m) => m.rss.lastOverFirst), peakMiBOfEveryRun: measured.map((m) => m.rss.peakMiB),
        /** The sink's exact peak (VmHWM) in its highest run, and in every run. */
        highWaterMiB: sinkHighWater,
        highWaterMiBOfEveryRun: measured.map((m) => m.rss.highWaterMiB),
        /** The floor of any sink that embeds this engine: the engine alone writing the same rows (its highest run). */
        engineAlone: { ...engineAlone, highWaterMiBOfEveryRun: measured.map((m) => m.engineAlone.highWaterMiB) },
        highWaterOverEngineAlone: ratio(sinkHighWater, engineAlone.highWaterMiB),
        /**
         * The sink writing to a ClickHouse server instead (the test server: the same engine behind the HTTP interface,
         * in a process of its own, one request at a time): its resident memory, and the server's exact peak. Not the
         * target's configuration (the embedded engine, the default), and its speed is the test server's.
         */
        againstServer: {
          ms: Math.round(againstServer.ms), eventsPerSecond: rate(events, againstServer.ms), cpuSeconds: tenths(againstServer.cpuSeconds),
          peakMiB: againstServer.rss.peakMiB, steadyMiB: againstServer.rss.steadyMiB, highWaterMiB: againstServer.rss.highWaterMiB,
          lastOverFirst: againstServer.rss.lastOverFirst, windowMediansMiB: againstServer.rss.windowMediansMiB, serverHighWaterMiB: againstServer.serverHighWaterMiB,
        },
      },
    },
  ];
}
