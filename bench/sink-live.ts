/**
 * The sink following a live feed: the workload's events produced at a steady rate instead of waiting as a backlog
 * (benchmark 1), with the sink and the bare decoding consumer following the topic at once. What keeping up costs:
 * the sink's CPU seconds per 1,000 events against the consumer's, its resident memory, and how soon after the
 * feed's last event everything is committed.
 */
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { STACK_DIR } from '../stack/layout.js';
import { deleteTopicsStartingWith } from '../test/support/topics.js';
import { decodingConsumer } from './lib/decoding-consumer.js';
import { cpuSeconds, highWaterMiB, ratio, sampleMemory } from './lib/environment.js';
import { createBenchTopic, type BenchStack, type Produced } from './lib/feed.js';
import { runJsonScript } from './lib/json-script.js';
import type { BenchResult } from './lib/report.js';
import { spawnSink, verifiedTables, waitForCommits, waitForMember } from './lib/sink-process.js';

/** About what a snapshot of a large account feeds the sink (the snapshot benchmark reads ~4,200 integrations/s). */
const EVENTS_PER_SECOND = 4_000;
/** The target: everything committed this soon after the feed's last event. */
const CAUGHT_UP_WITHIN_MS = 1_000;

/** The feed in a process of its own (lib/feed-process.ts): its producing counts against neither the sink nor the consumer. */
const runFeed = (stack: BenchStack, topic: string, events: number, inventory: number | undefined) => runJsonScript<Produced>('lib/feed-process.ts', {
  BENCH_BROKERS: stack.brokers.join(','), BENCH_REGISTRY_URL: stack.registryUrl, BENCH_TOPIC: topic, BENCH_EVENTS: String(events), BENCH_RATE: String(EVENTS_PER_SECOND), BENCH_INVENTORY: String(inventory ?? ''),
});

const perThousand = (cpu: number, events: number) => Math.round((cpu / events) * 1000 * 1000) / 1000;

export async function runSinkLive(stack: BenchStack, quick: boolean): Promise<BenchResult[]> {
  // BENCH_LIVE_SECONDS: a longer feed, e.g. 180 for whole minutes to compare the first and last of;
  // BENCH_LIVE_INVENTORY: a steady inventory of that many integrations (see WorkloadShape).
  const seconds = Number(process.env.BENCH_LIVE_SECONDS) || (quick ? 5 : 30);
  const inventory = Number(process.env.BENCH_LIVE_INVENTORY) || undefined;
  const events = EVENTS_PER_SECOND * seconds;
  const id = `bench-live-${Date.now().toString(36)}`;
  const topic = `bench.live.${id}`;
  const groupId = `${topic}.sink`;
  const path = join(STACK_DIR, 'bench-data', `${id}-sink`);
  process.stderr.write(`sink live: ${events} events at ${EVENTS_PER_SECOND}/s to ${topic}, followed by the sink and a bare decoding consumer\n`);
  await createBenchTopic(stack, topic);
  const admin = new Kafka({ brokers: stack.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const { sink, exited } = spawnSink(stack, topic, groupId, `chdb://${path}`);
  const memory = sampleMemory(sink.pid!);
  let measured;
  // Whatever happens here, the sink does not outlive the benchmark, nor the topic the run.
  try {
    const decoder = await decodingConsumer(stack, topic, events, 'decode-baseline');
    await waitForMember(admin, sink, groupId);
    // From here on the sink's CPU is following the feed: its start (modules, engine, tables) is not counted.
    const sinkCpuBefore = cpuSeconds(sink.pid!);
    const [produced, decode] = await Promise.all([runFeed(stack, topic, events, inventory), decoder.run()]);
    await waitForCommits(admin, sink, groupId, topic, await admin.fetchTopicOffsets(topic));
    measured = {
      produced, decode,
      caughtUpMs: Date.now() - produced.endedAt,
      sinkCpuSeconds: cpuSeconds(sink.pid!) - sinkCpuBefore,
      rss: { ...memory.stop(), highWaterMiB: highWaterMiB(sink.pid!) },
    };
  } finally {
    if (sink.exitCode === null) sink.kill('SIGTERM');
    await exited;
    await admin.disconnect();
    await deleteTopicsStartingWith(stack.brokers, topic).catch(() => undefined);
  }
  const { produced, decode, caughtUpMs, sinkCpuSeconds, rss } = measured;
  const tables = await verifiedTables(path, produced.summary);
  const [sinkPerThousand, decodePerThousand] = [perThousand(sinkCpuSeconds, events), perThousand(decode.cpuSeconds, events)];
  const overDecode = ratio(sinkCpuSeconds, decode.cpuSeconds);
  return [{
    name: 'sink-live', size: quick ? 'quick' : 'full', measuredAt: new Date().toISOString(), machine: tables.env,
    target: `every event committed within ${CAUGHT_UP_WITHIN_MS} ms of the feed's last one`,
    met: caughtUpMs <= CAUGHT_UP_WITHIN_MS,
    summary: `${overDecode} times the decoding consumer's CPU (sink ${sinkPerThousand} CPU-s per 1,000 events, consumer ${decodePerThousand}; ${EVENTS_PER_SECOND}/s for ${seconds} s); `
      + `everything committed ${caughtUpMs} ms after the last event; resident peak ${rss.peakMiB} MiB (exact ${rss.highWaterMiB}), steady ${rss.steadyMiB}, medians per ${rss.windowSeconds} s ${rss.windowMediansMiB.join(', ')}, last window's peak over the first's ${rss.lastOverFirst}`,
    figures: {
      events, eventsPerSecond: EVENTS_PER_SECOND, seconds, steadyInventory: inventory ?? null, bytesPerEvent: produced.bytesPerEvent, workload: produced.summary,
      sink: { cpuSeconds: sinkCpuSeconds, cpuSecondsPerThousandEvents: sinkPerThousand, caughtUpMs },
      decodeBaseline: { cpuSeconds: decode.cpuSeconds, cpuSecondsPerThousandEvents: decodePerThousand, brokerCpuSeconds: decode.brokerCpuSeconds },
      sinkCpuOverDecode: overDecode,
      memory: rss,
      tablesVerified: tables.counts,
    },
  }];
}
