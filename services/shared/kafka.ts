import kafkajs, { Kafka, Partitioners, logLevel, type Admin, type ITopicConfig, type LogEntry, type Message, type PartitionMetadata, type Producer } from 'kafkajs';
import type { KafkaSecurity } from './config.js';
import { DependencyError } from './errors.js';
import type { Logger } from './logger.js';
import { createRetry } from './retry.js';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

// kafkajs logs every retried request at ERROR; those it recovers from are noise at our level, so they go to debug.
// So do refused DescribeConfigs requests: every caller goes on without the settings (a principal may lack it).
const RECOVERABLE = /coordinator is (loading|not available)|There is no leader|Leadership election|not the correct coordinator|does not host this topic-partition|Response (Heartbeat|OffsetCommit|DescribeConfigs)/;

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

/**
 * The broker's error code in a kafkajs error, as kafkajs names it (TOPIC_AUTHORIZATION_FAILED): kafkajs wraps some
 * answers as the cause of its own errors, and one request's answers for several topics in an aggregate (the first).
 */
export function kafkaErrorType(error: unknown): string | undefined {
  const { type, errors, cause } = (error ?? {}) as { type?: string; errors?: { type?: string }[]; cause?: unknown };
  return type ?? errors?.[0]?.type ?? (cause ? kafkaErrorType(cause) : undefined);
}

/**
 * A send's handler of rejections: a refusal of Write on `topic` becomes one naming the topic and the grant (kafkajs's
 * names neither); anything else is rethrown as it is.
 */
export function namingWriteRefusal(topic: string): (error: unknown) => never {
  return (error) => {
    if (kafkaErrorType(error) !== 'TOPIC_AUTHORIZATION_FAILED') throw error;
    throw new DependencyError('APIGW_TOPIC', `the Kafka brokers refuse the principal Write on topic ${topic} (TOPIC_AUTHORIZATION_FAILED): grant it Write on the topic`, error);
  };
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
  if (!listed.has(topic)) await createTopicsWithLeaders(admin, [{ topic, numPartitions: partitions, replicationFactor: -1 }]);
  if (!listed.has(dlqTopic(topic))) {
    // Kept until someone deletes them: a dead letter is an event the tables lack until it is redriven, and a
    // retention would delete it whether it was or not.
    const configEntries = [{ name: 'retention.ms', value: '-1' }, ...await roomForDeadLetters(admin, topic)];
    await createTopicsWithLeaders(admin, [{ topic: dlqTopic(topic), numPartitions: 1, replicationFactor: -1, configEntries }]);
  }
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  return { partitions: metadata.topics[0]!.partitions.length, created: missing };
}

/** What a dead letter's headers (why it failed, where it was) can add to the largest message the topic takes. */
const DEAD_LETTER_HEADROOM = 64 * 1024;

/**
 * The dead-letter topic's message size limit: the topic's own, with room for a dead letter's headers. At the same
 * limit, a message the topic took that the sink cannot use would be refused as a dead letter. Where the topic's
 * configuration cannot be read (no DescribeConfigs permission), the broker's default; the sink then dead-letters
 * what does not fit without its value (see services/sink/dead-letters.ts).
 */
async function roomForDeadLetters(admin: Admin, topic: string): Promise<{ name: string; value: string }[]> {
  const limit = await messageSizeLimit(admin, topic).catch(() => undefined);
  return limit === undefined ? [] : [{ name: 'max.message.bytes', value: String(limit + DEAD_LETTER_HEADROOM) }];
}

// kafkajs's CommonJS exports, past what Node's named-export detection finds in its index.
const { ConfigResourceTypes } = kafkajs;

/** Settings of topics as the broker applies them (their own, or the broker's defaults), per topic, in one request. */
export async function topicsSettings(admin: Admin, topics: string[], names: string[]): Promise<Map<string, Map<string, string>>> {
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false, resources: topics.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: names })),
  });
  return new Map(resources.map((resource) => [resource.resourceName, new Map(resource.configEntries.map((entry) => [entry.configName, entry.configValue]))]));
}

/** Settings of a topic as the broker applies them: its own, or the broker's defaults. */
export async function topicSettings(admin: Admin, topic: string, names: string[]): Promise<Map<string, string>> {
  return (await topicsSettings(admin, [topic], names)).get(topic) ?? new Map();
}

/** The largest record batch a topic takes (its `max.message.bytes`, the broker's default when not its own). */
export async function messageSizeLimit(admin: Admin, topic: string): Promise<number | undefined> {
  const limit = Number((await topicSettings(admin, topic, ['max.message.bytes'])).get('max.message.bytes'));
  return Number.isSafeInteger(limit) ? limit : undefined;
}

/** Each partition of `topic`: the group's committed offset (-1 when none), its first offset and its end. */
export async function groupPositions(admin: Admin, groupId: string, topic: string): Promise<{ partition: number; committed: number; low: number; high: number }[]> {
  const [[committed], ends] = await Promise.all([admin.fetchOffsets({ groupId, topics: [topic] }), admin.fetchTopicOffsets(topic)]);
  const committedOf = new Map(committed!.partitions.map((p) => [p.partition, Number(p.offset)]));
  return ends.map((end) => ({ partition: end.partition, committed: committedOf.get(end.partition) ?? -1, low: Number(end.low), high: Number(end.high) }));
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

/**
 * Messages in sends of at most SEND_BYTES (at least one message each). kafkajs puts a send's messages for one
 * partition into one record batch, which the broker refuses whole above the topic's max.message.bytes (1 MiB by
 * default): a hundred integrations with large request templates, or a fetch's worth of dead letters, exceed it.
 */
const SEND_BYTES = 256 * 1024;
export function* inSends(messages: Message[]): Generator<Message[]> {
  let start = 0;
  let bytes = 0;
  for (let end = 0; end < messages.length; end++) {
    const size = sizeOf(messages[end]!);
    if (end > start && bytes + size > SEND_BYTES) {
      yield messages.slice(start, end);
      start = end;
      bytes = 0;
    }
    bytes += size;
  }
  if (start < messages.length) yield messages.slice(start);
}

/** A message's bytes: key, value and headers (a dead letter's headers can outweigh its value). */
function sizeOf({ key, value, headers }: Message): number {
  let size = Buffer.byteLength(key ?? '') + Buffer.byteLength(value ?? '');
  for (const [name, header] of Object.entries(headers ?? {})) size += name.length + Buffer.byteLength(header?.toString() ?? '');
  return size;
}

/**
 * Where the default partitioner (kafkajs's, and Java's for keyed messages: murmur2 of the key's bytes) puts a key
 * among `partitionCount` partitions.
 */
export function keyPartitions(partitionCount: number): (key: Buffer) => number {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitionCount }, (_, partitionId) => ({ partitionId, leader: 0 })) as PartitionMetadata[];
  return (key) => partitioner({ topic: '', partitionMetadata, message: { key, value: null } });
}
