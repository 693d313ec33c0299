import { ApiGatewayV2Client } from '@aws-sdk/client-apigatewayv2';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { Kafka, Producer } from 'kafkajs';
import { createChangeEmitter, type ChangeEmitter } from '../services/shared/change-emitter.js';
import { applySchema, openClickHouse, type ClickHouseClient } from '../services/shared/clickhouse.js';
import { createChangeCodec } from '../services/shared/codec.js';
import { requireRegions, type Config } from '../services/shared/config.js';
import { DependencyError, describeError } from '../services/shared/errors.js';
import { createIdempotentProducer, createKafka, ensureTopics } from '../services/shared/kafka.js';
import type { Logger } from '../services/shared/logger.js';
import type { Metrics } from '../services/shared/metrics.js';
import { createCheckpointStore } from '../services/cloudtrail-listener/checkpoint-store.js';
import { createCloudTrailListener, type CloudTrailListener } from '../services/cloudtrail-listener/index.js';
import { createSink, type Sink } from '../services/sink/index.js';
import { createStateStore } from '../services/sink/state-store.js';
import { createSnapshotter, type Snapshotter } from '../services/snapshotter/index.js';
import { createSnapshotProgress } from '../services/snapshotter/progress.js';
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

function awsClientOptions(config: Config, region: string) {
  return { region, endpoint: config.awsEndpointUrl, retryMode: 'adaptive' as const, maxAttempts: 10 };
}

async function resolveAccountId(config: Config): Promise<string> {
  if (config.awsAccountId) return config.awsAccountId;
  const sts = new STSClient(awsClientOptions(config, config.regions[0]!));
  try {
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    return identity.Account!;
  } catch (error) {
    throw new DependencyError('AWS', `cannot read the account id from STS GetCallerIdentity (${describeError(error)}); set AWS_ACCOUNT_ID or fix the credentials`, error);
  } finally {
    sts.destroy();
  }
}

export interface PipelineParts {
  snapshot: boolean;
  listen: boolean;
  sink: boolean;
}

/** The two sources of change events, sharing one emitter and one API Gateway client per region. */
async function openSources(options: PipelineParts & {
  config: Config; logger: Logger; metrics: Metrics; interactive: boolean;
  kafka: Kafka; emitter: ChangeEmitter; accountId: string; closers: (() => Promise<void>)[];
}): Promise<{ snapshotter?: Snapshotter; listener?: CloudTrailListener }> {
  const { config, logger, metrics, kafka, emitter, accountId, closers } = options;
  const clients = new Map<string, ApiGatewayV2Client>();
  const clientFor = (region: string) => {
    if (!clients.has(region)) clients.set(region, new ApiGatewayV2Client(awsClientOptions(config, region)));
    return clients.get(region)!;
  };
  closers.push(async () => clients.forEach((client) => client.destroy()));
  const sources: { snapshotter?: Snapshotter; listener?: CloudTrailListener } = {};

  if (options.snapshot) {
    sources.snapshotter = createSnapshotter({
      regions: config.regions,
      accountId,
      clientFor,
      emitter,
      concurrency: config.snapshotConcurrency,
      logger,
      metrics,
      progress: () => createSnapshotProgress({ logger, interactive: options.interactive }),
    });
  }

  if (options.listen) {
    const trails = new Map<string, CloudTrailClient>();
    const admin = kafka.admin();
    await admin.connect();
    closers.push(() => admin.disconnect());
    const listener = createCloudTrailListener({
      regions: config.regions,
      accountId,
      kafka,
      emitter,
      checkpoints: createCheckpointStore({ kafka, admin, topic: config.topic }),
      cloudtrailFor: (region) => {
        // Our own token bucket and backoff pace LookupEvents; the SDK retries only a little underneath.
        if (!trails.has(region)) trails.set(region, new CloudTrailClient({ region, endpoint: config.cloudtrailEndpointUrl, maxAttempts: 2 }));
        return trails.get(region)!;
      },
      apigatewayFor: clientFor,
      settings: config.listener,
      transactionalIdPrefix: `apigw-stream-listener.${config.topic}`,
      logger,
      metrics,
      interactive: options.interactive,
    });
    closers.push(async () => {
      await listener.stop();
      trails.forEach((client) => client.destroy());
    });
    sources.listener = listener;
  }
  return sources;
}

export async function openPipeline(options: PipelineParts & { config: Config; logger: Logger; metrics: Metrics; interactive: boolean; freshDatabase?: boolean }): Promise<Pipeline> {
  const { config, logger, metrics } = options;
  const readsAws = options.snapshot || options.listen;
  if (readsAws) requireRegions(config);
  await checkKafka(config.kafkaBrokers);
  await checkRegistry(config.schemaRegistryUrl);
  let clickhouse: ClickHouseClient | undefined;
  if (options.sink) {
    clickhouse = await openClickHouse(config.clickhouse);
  }
  const accountId = readsAws ? await resolveAccountId(config) : undefined;

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
    const sources = await openSources({ ...options, kafka, emitter, accountId: accountId!, closers });
    pipeline.snapshotter = sources.snapshotter;
    pipeline.listener = sources.listener;
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
