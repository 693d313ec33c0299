import type { Admin, Kafka, Transaction } from 'kafkajs';
import { z } from 'zod';
import { createTopicsWithLeaders } from '../shared/kafka.js';
import type { Logger } from '../shared/logger.js';
import { sleep } from '../shared/retry.js';

/** Where the listener is in CloudTrail for one account and region. */
const CheckpointRecord = z.object({
  account_id: z.string().min(1),
  region: z.string().min(1),
  /** End of the last committed LookupEvents window (epoch ms). */
  window_end: z.number().int().nonnegative(),
  /** Ids of events already applied whose time is inside the overlap before window_end, with their times. */
  seen: z.record(z.string(), z.number()),
});

export type Checkpoint = z.infer<typeof CheckpointRecord>;

/** A record's checkpoint, or why it is none. */
function parseCheckpoint(value: Buffer): Checkpoint | string {
  let json: unknown;
  try {
    json = JSON.parse(value.toString());
  } catch (error) {
    return `not JSON (${(error as Error).message})`;
  }
  const parsed = CheckpointRecord.safeParse(json);
  return parsed.success ? parsed.data : z.prettifyError(parsed.error).replaceAll('\n', ' ');
}

export function checkpointTopic(topic: string): string {
  return `${topic}.listener-checkpoints`;
}

const keyOf = (accountId: string, region: string) => `${accountId}/${region}`;

/**
 * Checkpoints live in a compacted Kafka topic and are written in the same transaction as the events derived
 * from them, so a crash at any point either keeps both or neither.
 */
export function createCheckpointStore({ kafka, admin, topic, logger }: { kafka: Kafka; admin: Admin; topic: string; logger: Logger }) {
  const name = checkpointTopic(topic);
  return {
    /**
     * Makes the checkpoint topic when missing, through `via` (by default the store's admin); `existing`: the topics
     * as just listed, when the caller has them. Returns the topics it made.
     */
    async ensureTopic(via: Admin = admin, existing?: string[]): Promise<string[]> {
      if ((existing ?? await via.listTopics()).includes(name)) return [];
      await createTopicsWithLeaders(via, [
        { topic: name, numPartitions: 1, replicationFactor: -1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
      ]);
      return [name];
    },

    /**
     * The last committed checkpoint of every region, as far as a read_committed read reaches. A dead instance's open
     * transaction holds the topic's readable end back until this instance's first transaction with its id aborts it
     * (or its timeout does); kafkajs reports the empty fetch there at the topic's end, so the read ends below it. A
     * checkpoint committed after that point is not seen then: its region resumes from the one before and reads those
     * events again, which the sink takes as states it already holds. A record that is not a checkpoint (written by
     * something else) is skipped with a warning: its region resumes from the checkpoint before it, or, if compaction
     * removed that, looks back.
     */
    async loadAll(timeoutMs = 60_000): Promise<Map<string, Checkpoint>> {
      const offsets = await admin.fetchTopicOffsets(name);
      const pending = new Map(offsets.filter((p) => Number(p.high) > Number(p.low)).map((p) => [p.partition, Number(p.high) - 1]));
      const checkpoints = new Map<string, Checkpoint>();
      if (pending.size === 0) return checkpoints;
      const consumer = kafka.consumer({ groupId: `apigw-stream-checkpoint-reader-${process.pid}-${Date.now()}`, readUncommitted: false });
      const reached = (partition: number, lastOffset: string) => {
        if (Number(lastOffset) >= (pending.get(partition) ?? Infinity)) pending.delete(partition);
      };
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => reached(payload.partition, payload.lastOffset));
      await consumer.connect();
      try {
        await consumer.subscribe({ topic: name, fromBeginning: true });
        await consumer.run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            if (!message.value) return;
            const checkpoint = parseCheckpoint(message.value);
            if (typeof checkpoint === 'string') {
              logger.warn({ topic: name, partition, offset: message.offset, key: message.key?.toString(), error: checkpoint },
                'skipped a record of the checkpoint topic that is not a checkpoint; its region resumes from the one before it, if any');
              return;
            }
            checkpoints.set(keyOf(checkpoint.account_id, checkpoint.region), checkpoint);
          },
        });
        const deadline = Date.now() + timeoutMs;
        while (pending.size > 0) {
          if (Date.now() > deadline) throw new Error(`could not read ${name} to its end within ${timeoutMs / 1000} s`);
          await sleep(100);
        }
      } finally {
        await consumer.disconnect();
      }
      return checkpoints;
    },

    get(checkpoints: Map<string, Checkpoint>, accountId: string, region: string): Checkpoint | undefined {
      return checkpoints.get(keyOf(accountId, region));
    },

    async write(via: Transaction, checkpoint: Checkpoint): Promise<void> {
      await via.send({ topic: name, acks: -1, messages: [{ key: keyOf(checkpoint.account_id, checkpoint.region), value: JSON.stringify(checkpoint) }] });
    },
  };
}

export type CheckpointStore = ReturnType<typeof createCheckpointStore>;
