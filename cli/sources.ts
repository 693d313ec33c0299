import { ApiGatewayV2Client } from '@aws-sdk/client-apigatewayv2';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { Kafka } from 'kafkajs';
import type { ChangeEmitter } from '../services/shared/change-emitter.js';
import type { Config } from '../services/shared/config.js';
import { DependencyError, describeError } from '../services/shared/errors.js';
import type { Logger } from '../services/shared/logger.js';
import type { Metrics } from '../services/shared/metrics.js';
import { createCheckpointStore } from '../services/cloudtrail-listener/checkpoint-store.js';
import { createCloudTrailListener, type CloudTrailListener } from '../services/cloudtrail-listener/index.js';
import { createSnapshotter, type Snapshotter } from '../services/snapshotter/index.js';
import { createSnapshotProgress } from '../services/snapshotter/progress.js';
import type { PipelineParts } from './pipeline.js';

// The pipeline's AWS side (the snapshotter, the CloudTrail listener, the account they read): the commands that read
// AWS import this module when they start, so that the others start without the AWS SDK.

function awsClientOptions(config: Config, region: string) {
  return { region, endpoint: config.awsEndpointUrl, retryMode: 'adaptive' as const, maxAttempts: 10 };
}

export async function resolveAccountId(config: Config): Promise<string> {
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

/** The two sources of change events, sharing one emitter and one API Gateway client per region. */
export async function openSources(options: PipelineParts & {
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
      checkpoints: createCheckpointStore({ kafka, admin, topic: config.topic, logger }),
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
