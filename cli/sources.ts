import { ApiGatewayV2Client } from '@aws-sdk/client-apigatewayv2';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import type { Kafka } from 'kafkajs';
import type { AccountDirectory, AwsAccount } from '../services/shared/account-directory.js';
import { scopeKey, type AwsScope } from '../services/shared/aws-scope.js';
import type { ChangeEmitter } from '../services/shared/change-emitter.js';
import type { Config } from '../services/shared/config.js';
import type { Logger } from '../services/shared/logger.js';
import type { Metrics } from '../services/shared/metrics.js';
import { createCheckpointStore } from '../services/cloudtrail-listener/checkpoint-store.js';
import { createCloudTrailListener, type CloudTrailListener } from '../services/cloudtrail-listener/index.js';
import { createSnapshotter, type Snapshotter } from '../services/snapshotter/index.js';
import { createSnapshotProgress } from '../services/snapshotter/progress.js';
import type { PipelineParts } from './pipeline.js';

// The pipeline's AWS side (the snapshotter, the CloudTrail listener, the accounts they read): the commands that read
// AWS import this module when they start, so that the others start without the AWS SDK.

export { openAccountDirectory } from '../services/shared/account-directory.js';

/** Every configured region of each account the directory reads now. */
export async function scopesToRead(directory: AccountDirectory, regions: string[]): Promise<AwsScope[]> {
  return (await directory.accounts()).flatMap(({ accountId }) => regions.map((region) => ({ accountId, region })));
}

/** An API Gateway client of one account's region: throttling retried by the SDK's adaptive mode. */
export function apiGatewayClient(config: Config, region: string, credentials?: AwsAccount['credentials']): ApiGatewayV2Client {
  return new ApiGatewayV2Client({ region, endpoint: config.awsEndpointUrl, retryMode: 'adaptive', maxAttempts: 10, credentials });
}

/** A CloudTrail client of one account's region. The listener's own token bucket and backoff pace LookupEvents: the SDK retries only a little underneath. */
export function cloudTrailClient(config: Config, region: string, credentials?: AwsAccount['credentials']): CloudTrailClient {
  return new CloudTrailClient({ region, endpoint: config.cloudtrailEndpointUrl, maxAttempts: 2, credentials });
}

/** The two sources of change events, sharing one emitter and one API Gateway client per account and region. */
export async function openSources(options: PipelineParts & {
  config: Config; logger: Logger; metrics: Metrics; interactive: boolean;
  kafka: Kafka; emitter: ChangeEmitter; directory: AccountDirectory; closers: (() => Promise<void>)[];
}): Promise<{ snapshotter?: Snapshotter; listener?: CloudTrailListener }> {
  const { config, logger, metrics, kafka, emitter, directory, closers } = options;
  const scopes = () => scopesToRead(directory, config.regions);
  /** One client per account and region, made on first use. */
  const perScope = <T>(make: (scope: AwsScope, credentials?: AwsAccount['credentials']) => T) => {
    const made = new Map<string, T>();
    const clientFor = (scope: AwsScope) => {
      const key = scopeKey(scope);
      if (!made.has(key)) made.set(key, make(scope, directory.credentialsOf(scope.accountId)));
      return made.get(key)!;
    };
    return { clientFor, made };
  };
  const apigateway = perScope((scope, credentials) => apiGatewayClient(config, scope.region, credentials));
  closers.push(async () => apigateway.made.forEach((client) => client.destroy()));
  const sources: { snapshotter?: Snapshotter; listener?: CloudTrailListener } = {};

  if (options.snapshot) {
    sources.snapshotter = createSnapshotter({
      scopes,
      clientFor: apigateway.clientFor,
      emitter,
      concurrency: config.snapshotConcurrency,
      regionsAtOnce: config.snapshotRegionsAtOnce,
      logger,
      metrics,
      progress: () => createSnapshotProgress({ logger, interactive: options.interactive }),
    });
  }

  if (options.listen) {
    const trails = perScope((scope, credentials) => cloudTrailClient(config, scope.region, credentials));
    const admin = kafka.admin();
    await admin.connect();
    closers.push(() => admin.disconnect());
    const listener = createCloudTrailListener({
      scopes,
      kafka,
      emitter,
      checkpoints: createCheckpointStore({ kafka, admin, topic: config.topic, logger }),
      cloudtrailFor: trails.clientFor,
      apigatewayFor: apigateway.clientFor,
      settings: config.listener,
      transactionalIdPrefix: `apigw-stream-listener.${config.topic}`,
      logger,
      metrics,
      interactive: options.interactive,
    });
    closers.push(async () => {
      await listener.stop();
      trails.made.forEach((client) => client.destroy());
    });
    sources.listener = listener;
  }
  return sources;
}
