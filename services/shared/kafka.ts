import { Kafka, Partitioners, logLevel, type Admin, type ITopicConfig, type LogEntry, type Producer } from 'kafkajs';
import type { KafkaSecurity } from './config.js';
import type { Logger } from './logger.js';
import { createRetry } from './retry.js';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

// kafkajs logs every retried request at ERROR; those it recovers from are noise at our level, so they go to debug.
const RECOVERABLE = /coordinator is (loading|not available)|There is no leader|Leadership election|not the correct coordinator|does not host this topic-partition|Response (Heartbeat|OffsetCommit)/;

export function createKafka(options: { brokers: string[]; security: KafkaSecurity; clientId: string; logger: Logger }): Kafka {
  const log = options.logger.child({ component: 'kafkajs' });
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    ...options.security,
    connectionTimeout: 5000,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 10_000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log: entry }: LogEntry) => {
      const { message, ...rest } = entry;
      const target = RECOVERABLE.test(`${message} ${String(rest.error ?? '')}`) ? 'debug' : (LEVELS[level] ?? 'info');
      log[target]({ namespace, ...rest }, message);
    },
  });
}

export function dlqTopic(topic: string): string {
  return `${topic}.dlq`;
}

const leaderRetry = createRetry({ retries: 10, initialDelayMs: 100, maxDelayMs: 2000 });

/**
 * Creates topics and returns once every partition of them has a leader. kafkajs's own wait (`waitForLeaders`)
 * retries only LEADER_NOT_AVAILABLE; a broker that has just started answers UNKNOWN_TOPIC_OR_PARTITION for a moment
 * after creating a topic (tulios/kafkajs#1222), and the first command against a fresh stack failed on it.
 */
export async function createTopicsWithLeaders(admin: Admin, topics: ITopicConfig[]): Promise<void> {
  await admin.createTopics({ waitForLeaders: false, topics });
  await leaderRetry(async () => {
    const metadata = await admin.fetchTopicMetadata({ topics: topics.map(({ topic }) => topic) });
    const leaderless = metadata.topics.filter(({ partitions }) => partitions.some(({ leader }) => leader < 0)).map(({ name }) => name);
    if (leaderless.length > 0) throw Object.assign(new Error(`no partition leader yet for ${leaderless.join(', ')}`), { retriable: true });
  });
}

/**
 * Creates the topic and its dead-letter topic when missing (`existing`: the topics as just listed, when the caller has
 * them); returns the topic's partition count and what it made.
 */
export async function ensureTopics(
  admin: Admin, topic: string, partitions: number, existing?: string[],
): Promise<{ partitions: number; created: string[] }> {
  const listed = new Set(existing ?? await admin.listTopics());
  const missing = [topic, dlqTopic(topic)].filter((name) => !listed.has(name));
  if (missing.length > 0) {
    await createTopicsWithLeaders(admin, missing.map((name) => ({ topic: name, numPartitions: name === topic ? partitions : 1, replicationFactor: -1 })));
  }
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  return { partitions: metadata.topics[0]!.partitions.length, created: missing };
}

/**
 * Runs `work` with an admin client of its own. kafkajs keeps asking for every topic a client has asked about in its
 * later metadata requests, and fails them all once such a topic is deleted: a new client does not.
 */
export async function withAdmin<T>(kafka: Kafka, work: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.disconnect();
  }
}

/**
 * An idempotent producer (acks=all enforced by kafkajs). It retries without limit, with backoff up to 10 s: a
 * broker that goes away delays events, never drops them, and kafkajs requires it for idempotence.
 */
export function createIdempotentProducer(kafka: Kafka, options: { transactionalId?: string } = {}): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    transactionalId: options.transactionalId,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 10_000 },
  });
}
