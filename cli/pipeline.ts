import type { Kafka, Producer } from 'kafkajs';
import { createChangeEmitter } from '../services/shared/change-emitter.js';
import { applySchema, openClickHouse, type ClickHouseClient } from '../services/shared/clickhouse.js';
import { createChangeCodec } from '../services/shared/codec.js';
import { requireRegions, type Config } from '../services/shared/config.js';
import { describeError } from '../services/shared/errors.js';
import { createIdempotentProducer, createKafka, dlqTopic, ensureTopics, withAdmin } from '../services/shared/kafka.js';
import { keepTopics } from '../services/shared/topic-keeper.js';
import type { Logger } from '../services/shared/logger.js';
import type { Metrics } from '../services/shared/metrics.js';
import type { CloudTrailListener } from '../services/cloudtrail-listener/index.js';
import { checkpointTopic } from '../services/cloudtrail-listener/checkpoint-store.js';
import { createSink, type Sink } from '../services/sink/index.js';
import { createStateStore } from '../services/sink/state-store.js';
import type { Snapshotter } from '../services/snapshotter/index.js';
import { createDriftQueries } from '../services/query/drift-queries.js';
import { announceEndpoint } from '../services/query/query-endpoint.js';
import { listenForQueries } from '../services/query/query-server.js';
import { checkKafka, checkRegistry, type KafkaUse } from './preflight.js';

/** Wires the services from configuration. Every dependency is checked before the first write. */
export interface Pipeline {
  snapshotter?: Snapshotter;
  listener?: CloudTrailListener;
  sink?: Sink;
  clickhouse?: ClickHouseClient;
  close(): Promise<void>;
}

export interface PipelineParts {
  snapshot: boolean;
  listen: boolean;
  sink: boolean;
}

type PipelineOptions = PipelineParts & { config: Config; logger: Logger; metrics: Metrics; interactive: boolean; freshDatabase?: boolean };

export async function openPipeline(options: PipelineOptions): Promise<Pipeline> {
  const { logger } = options;
  const closers: (() => Promise<void>)[] = [];
  const pipeline: Pipeline = {
    async close() {
      for (const close of closers.splice(0).reverse()) await close().catch((error) => logger.warn({ err: describeError(error) }, 'error while closing'));
    },
  };
  try {
    await openParts(options, pipeline, closers);
    return pipeline;
  } catch (error) {
    // Whatever opened before the failure closes again: a consumer leaves its group, an engine lets go of its directory.
    await pipeline.close();
    throw error;
  }
}

/** The topics every part makes when missing, the one it writes first (a sink, its dead letters), and the sink's group. */
function kafkaUse(config: Config, parts: PipelineParts): KafkaUse {
  const made = (name: string) => ({ name, variable: 'APIGW_TOPIC', creates: true });
  const changes = made(config.topic);
  const deadLetters = made(dlqTopic(config.topic));
  return {
    topics: [changes, ...(parts.sink ? [deadLetters] : []), ...(parts.listen ? [made(checkpointTopic(config.topic))] : [])],
    writes: parts.snapshot || parts.listen ? changes : deadLetters,
    group: parts.sink ? { id: config.sinkGroupId, variable: 'APIGW_SINK_GROUP_ID' } : undefined,
  };
}

/** Opens every part `options` asks for into `pipeline`, each with its closer in `closers` as soon as it is open. */
async function openParts(options: PipelineOptions, pipeline: Pipeline, closers: (() => Promise<void>)[]): Promise<void> {
  const { config, logger, metrics } = options;
  const readsAws = options.snapshot || options.listen;
  if (readsAws) requireRegions(config);
  await checkKafka(config.kafkaBrokers, { security: config.kafkaSecurity, use: kafkaUse(config, options) });
  await checkRegistry(config.schemaRegistryUrl, config.schemaRegistryAuth);
  // The AWS SDK is loaded only by the commands that read AWS: a sink or a query starts without it. Their accounts
  // are checked here, before the engine makes its directory.
  const sources = readsAws ? await import('./sources.js') : undefined;
  const directory = sources ? await sources.openAccountDirectory(config, { logger, metrics }) : undefined;
  if (directory) closers.push(async () => directory.close());
  // The process that will hold the embedded engine answers `apigw-stream query` for the others: its port is taken
  // before anything is written.
  const queryServer = options.sink && config.clickhouse.kind === 'chdb' ? await listenForQueries({ port: config.queryPort, logger }) : undefined;
  if (queryServer) closers.push(() => queryServer.close());
  if (options.sink) {
    const clickhouse = await openClickHouse(config.clickhouse, { logger });
    pipeline.clickhouse = clickhouse;
    closers.push(() => clickhouse.close());
  }

  const kafka: Kafka = createKafka({ brokers: config.kafkaBrokers, security: config.kafkaSecurity, clientId: 'apigw-stream', logger });
  const codec = createChangeCodec({ registryUrl: config.schemaRegistryUrl, registryAuth: config.schemaRegistryAuth, topic: config.topic });
  const { partitions: partitionCount } = await withAdmin(kafka, (admin) => ensureTopics(admin, config.topic, config.topicPartitions));
  await codec.register();

  if (readsAws) {
    const producer: Producer = createIdempotentProducer(kafka);
    await producer.connect();
    closers.push(() => producer.disconnect());
    const emitter = createChangeEmitter({ producer, codec, topic: config.topic, partitionCount, logger, metrics });
    const opened = await sources!.openSources({ ...options, kafka, emitter, directory: directory!, closers });
    pipeline.snapshotter = opened.snapshotter;
    pipeline.listener = opened.listener;
  }
  // Every service writes a topic that may be deleted under it: the change topic (or, for a sink, its dead-letter
  // topic, and the change topic it waits on), and a listener's checkpoints.
  let toldOfNewPartitions = false;
  const stopKeeping = keepTopics({
    logger,
    ensure: () => withAdmin(kafka, async (admin) => {
      // One listing for every topic checked.
      const existing = await admin.listTopics();
      const topic = await ensureTopics(admin, config.topic, partitionCount, existing);
      if (readsAws && topic.partitions !== partitionCount && !toldOfNewPartitions) {
        toldOfNewPartitions = true;
        logger.warn({ topic: config.topic, startedWith: partitionCount, partitions: topic.partitions },
          'the topic has more partitions than when this process started: its completion markers go to those it knew, so deletions of integrations whose keys go to the others wait until it restarts');
      }
      return [...topic.created, ...(await pipeline.listener?.ensureTopic(admin, existing) ?? [])];
    }),
  });
  closers.push(async () => stopKeeping());

  const clickhouse = pipeline.clickhouse;
  if (options.sink && clickhouse) {
    if (options.freshDatabase) await clickhouse.command({ query: `DROP DATABASE IF EXISTS ${config.clickhouseDatabase}` });
    await applySchema(clickhouse, config.clickhouseDatabase, config.clickhouseCluster);
    const store = createStateStore({ client: clickhouse, database: config.clickhouseDatabase });
    const sink = createSink({
      soleWriter: config.clickhouse.kind === 'chdb', writeRetries: config.sinkWriteRetries, heldLimit: config.sinkHeldIntegrations,
      kafka, codec, store, topic: config.topic, groupId: config.sinkGroupId, logger, metrics,
    });
    // Its closer first: a start that fails half-way still disconnects the clients it connected.
    closers.push(() => sink.stop());
    await sink.start();
    pipeline.sink = sink;
    if (queryServer && config.clickhouse.kind === 'chdb') {
      queryServer.serve(createDriftQueries({ client: clickhouse, database: config.clickhouseDatabase }));
      const withdraw = announceEndpoint(config.clickhouse.path, queryServer.url);
      closers.push(async () => {
        withdraw();
        await queryServer.close();
      });
    }
  }
}
