/**
 * The sink benchmarks' topic and its events: the workload (lib/workload.ts) encoded with the project's codec and
 * produced to a topic of its own, as fast as the broker takes them or at a steady rate.
 */
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { createChangeCodec } from '../../services/shared/codec.js';
import { createTopicsWithLeaders } from '../../services/shared/kafka.js';
import { sleep } from '../../services/shared/retry.js';
import { generateWorkload, type WorkloadSummary } from './workload.js';

export interface BenchStack {
  brokers: string[];
  registryUrl: string;
}

export const PARTITIONS = 6;
/** Events per send when producing as fast as the broker takes them. */
const SEND_BATCH = 500;
/** A paced feed sends what is due this often. */
const PACED_SEND_MS = 100;

export async function createBenchTopic(stack: BenchStack, topic: string): Promise<void> {
  const admin = new Kafka({ brokers: stack.brokers, logLevel: logLevel.WARN }).admin();
  await admin.connect();
  try {
    await createTopicsWithLeaders(admin, [{ topic, numPartitions: PARTITIONS }]);
  } finally {
    await admin.disconnect();
  }
}

export interface Produced {
  summary: WorkloadSummary;
  bytesPerEvent: number;
  /** When the last event was acknowledged (epoch ms). */
  endedAt: number;
}

/**
 * Produces the workload's `events` to an existing topic: all at once, or `perSecond` of them a second, sent every
 * 100 ms as they fall due (a live feed); `inventory`: a steady one of that size (see WorkloadShape).
 */
export async function produceWorkload(stack: BenchStack, topic: string, events: number, { perSecond, inventory }: { perSecond?: number; inventory?: number } = {}): Promise<Produced> {
  const codec = createChangeCodec({ registryUrl: stack.registryUrl, topic });
  await codec.register();
  const producer = new Kafka({ brokers: stack.brokers, logLevel: logLevel.WARN })
    .producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    const perSend = perSecond ? Math.max(1, Math.round((perSecond * PACED_SEND_MS) / 1000)) : SEND_BATCH;
    const started = Date.now();
    let sent = 0;
    let bytes = 0;
    const workload = generateWorkload({ events, region: 'us-east-2', accountId: '123456789012', inventory });
    let next = workload.next();
    while (!next.done) {
      const encoding: Promise<{ key: Buffer; value: Buffer }>[] = [];
      for (; !next.done && encoding.length < perSend; next = workload.next()) encoding.push(codec.encode(next.value, next.value));
      const messages = await Promise.all(encoding);
      for (const m of messages) bytes += m.key.length + m.value.length;
      await producer.send({ topic, acks: -1, messages });
      sent += messages.length;
      if (perSecond) await sleep(Math.max(0, started + (sent / perSecond) * 1000 - Date.now()));
    }
    return { summary: next.value, bytesPerEvent: Math.round(bytes / events), endedAt: Date.now() };
  } finally {
    await producer.disconnect();
  }
}
