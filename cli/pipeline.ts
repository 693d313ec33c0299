import type { Kafka, Producer } from 'kafkajs';
import { createChangeEmitter } from '../services/shared/change-emitter.js';
import { applySchema, openClickHouse, type ClickHouseClient } from '../services/shared/clickhouse.js';
import { createChangeCodec } from '../services/shared/codec.js';
import { requireRegions, type Config } from '../services/shared/config.js';
import { describeError } from '../services/shared/errors.js';
import { createIdempotentProducer, createKafka, ensureTopics } from '../services/shared/kafka.js';
import type { Logger } from '../services/shared/logger.js';
import type { Metrics } from '../services/shared/metrics.js';
import type { CloudTrailListener } from '../services/cloudtrail-listener/index.js';
import { createSink, type Sink } from '../services/sink/index.js';
import { createStateStore } from '../services/sink/state-store.js';
import type { Snapshotter } from '../services/snapshotter/index.js';
import { createDriftQueries } from '../services/query/drift-queries.js';
import { announceEndpoint } from '../services/query/query-endpoint.js';
import { serveQueries } from '../services/query/query-server.js';
import { checkKafka, checkRegistry } from './preflight.js';

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

export async function openPipeline(options: PipelineParts & { config: Config; logger: Logger; metrics: Metrics; interactive: boolean; freshDatabase?: boolean }): Promise<Pipeline> {
  const { config, logger, metrics } = options;
  const readsAws = options.snapshot || options.listen;
  if (readsAws) requireRegions(config);
  await checkKafka(config.kafkaBrokers);
  await checkRegistry(config.schemaRegistryUrl);
  let clickhouse: ClickHouseClient | undefined;
  if (options.sink) {
    clickhouse = await openClickHouse(config.clickhouse, { logger });
  }
  // The AWS SDK is loaded only by the commands that read AWS: a sink or a query starts without it.
  const sources = readsAws ? await import('./sources.js') : undefined;
  const accountId = sources ? await sources.resolveAccountId(config) : undefined;

  const kafka: Kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'apigw-stream', logger });
  const codec = createChangeCodec({ registryUrl: config.schemaRegistryUrl, topic: config.topic });
  const admin = kafka.admin();
  await admin.connect();
  const partitionCount = await ensureTopics(admin, config.topic, config.topicPartitions);
  await admin.disconnect();
  await codec.register();

  const closers: (() => Promise<void>)[] = [];
  const pipeline: Pipeline = {
    clickhouse,
    async close() {
      for (const close of closers.reverse()) await close().catch((error) => logger.warn({ err: describeError(error) }, 'error while closing'));
    },
  };
  if (clickhouse) closers.push(() => clickhouse!.close());

  if (readsAws) {
    const producer: Producer = createIdempotentProducer(kafka);
    await producer.connect();
    closers.push(() => producer.disconnect());
    const emitter = createChangeEmitter({ producer, codec, topic: config.topic, partitionCount, logger, metrics });
    const opened = await sources!.openSources({ ...options, kafka, emitter, accountId: accountId!, closers });
    pipeline.snapshotter = opened.snapshotter;
    pipeline.listener = opened.listener;
  }

  if (options.sink) {
    if (options.freshDatabase) await clickhouse!.command({ query: `DROP DATABASE IF EXISTS ${config.clickhouseDatabase}` });
    await applySchema(clickhouse!, config.clickhouseDatabase, config.clickhouseCluster);
    const store = createStateStore({ client: clickhouse!, database: config.clickhouseDatabase });
    const sink = createSink({
      soleWriter: config.clickhouse.kind === 'chdb', writeRetries: config.sinkWriteRetries,
      kafka, codec, store, topic: config.topic, groupId: config.sinkGroupId, logger, metrics,
    });
    await sink.start();
    pipeline.sink = sink;
    closers.push(() => sink.stop());
    if (config.clickhouse.kind === 'chdb') {
      // This process holds the embedded engine's directory: it answers `apigw-stream query` for the others.
      const server = await serveQueries({ queries: createDriftQueries({ client: clickhouse!, database: config.clickhouseDatabase }), port: config.queryPort, logger });
      const withdraw = announceEndpoint(config.clickhouse.path, server.url);
      closers.push(async () => {
        withdraw();
        await server.close();
      });
    }
  }
  return pipeline;
}
