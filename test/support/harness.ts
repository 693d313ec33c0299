import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ApiGatewayV2Client } from '@aws-sdk/client-apigatewayv2';
import { Kafka, logLevel, type Message, type Producer } from 'kafkajs';
import { openPipeline, type Pipeline, type PipelineParts } from '../../cli/pipeline.js';
import { createChangeEmitter, type ChangeEmitter } from '../../services/shared/change-emitter.js';
import { queryRows } from '../../services/shared/clickhouse.js';
import { createChangeCodec } from '../../services/shared/codec.js';
import { loadConfig, stackPorts, type Config } from '../../services/shared/config.js';
import { createLogger } from '../../services/shared/logger.js';
import { createMetrics } from '../../services/shared/metrics.js';
import { STACK_DIR } from '../../stack/layout.js';
import { motoPart, registryPart } from '../../stack/parts.js';
import { deleteTopicsStartingWith } from './topics.js';

export const ports = stackPorts();
export const motoEndpoint = motoPart(ports.moto).endpoint;
export const registryUrl = registryPart(ports.registry).endpoint;
/** The subjects the local registry holds: a start that stops before writing registers none. */
export const registrySubjects = async () => (await fetch(`${registryUrl}/subjects`)).json() as Promise<string[]>;
export const brokers = [`127.0.0.1:${ports.kafka}`];
/** The local broker's SASL/PLAIN listener (see STACK_SASL_USER). */
export const saslBrokers = [`127.0.0.1:${ports.kafkaSasl}`];
/** Its TLS listener, whose certificate the stack's own CA signs (stackKafkaCaFile). */
export const tlsBrokers = [`127.0.0.1:${ports.kafkaSsl}`];
/** Its SASL listener over TLS (SASL_SSL), as Amazon MSK takes IAM access control. */
export const saslTlsBrokers = [`127.0.0.1:${ports.kafkaSaslSsl}`];

// moto accepts any credentials; the SDK only needs some.
process.env.AWS_ACCESS_KEY_ID ??= 'test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'test';

export const uniqueName = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

export function awsClient(region: string): ApiGatewayV2Client {
  return new ApiGatewayV2Client({ region, endpoint: motoEndpoint });
}

export function plainKafka(): Kafka {
  return new Kafka({ brokers, logLevel: logLevel.NOTHING });
}

/** Sends `messages` to `topic` in one send, as a producer of the test's own would. */
export async function produce(topic: string, messages: Message[]): Promise<void> {
  const producer = plainKafka().producer();
  await producer.connect();
  try {
    await producer.send({ topic, messages });
  } finally {
    await producer.disconnect();
  }
}

export interface TopicMessage {
  partition: number;
  key: Buffer;
  value: Buffer;
  headers: Record<string, string>;
}

/**
 * Every message a topic holds now, as its bytes, read from its start by a consumer group of its own (committed
 * messages only). Read until each partition's end: counting messages would wait for ever on a transactional
 * producer's topic, whose transaction markers take offsets too.
 */
export async function topicMessages(topic: string): Promise<TopicMessage[]> {
  const kafka = plainKafka();
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const pending = new Map(offsets.filter((p) => Number(p.high) > Number(p.low)).map((p) => [p.partition, Number(p.high) - 1]));
  // No consumer for an empty topic: one disconnected while it still joins its group is restarted by kafkajs, and
  // lives on (in a restart loop once the topic is deleted), keeping the test's process alive.
  if (pending.size === 0) return [];
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), retry: { restartOnFailure: async () => false } });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const messages: TopicMessage[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error));
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (Number(payload.lastOffset) >= (pending.get(payload.partition) ?? Infinity)) pending.delete(payload.partition);
        if (pending.size === 0) resolve();
      });
      consumer.run({
        eachMessage: async ({ partition, message }) => {
          const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([name, value]) => [name, String(value)]));
          messages.push({ partition, key: message.key!, value: message.value!, headers });
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return messages;
}

/**
 * A pipeline of its own for one test file: its own topic, consumer group, ClickHouse database and embedded data
 * directory, and one region of the emulator (moto keeps state per region) so tests never see each other's data.
 */
export function testEnvironment(options: { region: string; partitions?: number; extra?: Record<string, string>; logLines?: string[] }) {
  const id = uniqueName('t').replaceAll('-', '_');
  const dataDir = join(STACK_DIR, 'test-data', id);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KAFKA_BROKERS: brokers.join(','),
    SCHEMA_REGISTRY_URL: registryUrl,
    CLICKHOUSE_URL: `chdb://${dataDir}`,
    CLICKHOUSE_DATABASE: id,
    AWS_REGIONS: options.region,
    AWS_ENDPOINT_URL: motoEndpoint,
    APIGW_TOPIC: `test.${id}`,
    APIGW_TOPIC_PARTITIONS: String(options.partitions ?? 3),
    APIGW_SINK_GROUP_ID: `sink-${id}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    ...options.extra,
  };
  const config: Config = loadConfig(env);
  // Kept in `logLines` when given, for a test that asserts what the services said; on stderr otherwise.
  const logger = options.logLines ? createLogger(config.logLevel, { write: (line) => options.logLines!.push(line) }) : createLogger(config.logLevel);
  const metrics = createMetrics();
  const open = (parts: Partial<PipelineParts>): Promise<Pipeline> =>
    openPipeline({ config, logger, metrics, interactive: false, snapshot: false, listen: false, sink: false, ...parts });
  return {
    config,
    metrics,
    env,
    open,
    table: (name: string) => `${config.clickhouseDatabase}.${name}`,
    /** Removes the embedded data directory and the topics the test made. */
    cleanup: async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await deleteTopicsStartingWith(brokers, config.topic);
    },
  };
}

/**
 * The listener's emitter on the environment's topic of `partitionCount` partitions, with the schemas registered: a
 * test's feed. The caller disconnects the producer.
 */
export async function openEmitter(env: ReturnType<typeof testEnvironment>, partitionCount: number): Promise<{ producer: Producer; emitter: ChangeEmitter }> {
  const codec = createChangeCodec({ registryUrl, topic: env.config.topic });
  await codec.register();
  const producer = plainKafka().producer({ idempotent: true });
  await producer.connect();
  const emitter = createChangeEmitter({ producer, codec, topic: env.config.topic, partitionCount, logger: createLogger('warn'), metrics: env.metrics });
  return { producer, emitter };
}

export async function rows<T = Record<string, unknown>>(pipeline: Pipeline, query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  return queryRows<T>(pipeline.clickhouse!, query, params);
}

/** A port no process listens on now (for a service the test starts, which takes it a moment later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Polls until `check` returns a truthy value, failing with `what` after the timeout. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Runs a pipeline's CloudTrail listener until `stop()`, which settles once its last poll has ended. */
export function runListener(pipeline: Pipeline): { stop: () => Promise<void> } {
  const abort = new AbortController();
  const running = pipeline.listener!.run(abort.signal);
  return {
    stop: async () => {
      abort.abort();
      await running;
    },
  };
}
