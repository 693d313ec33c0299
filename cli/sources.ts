import { ApiGatewayV2Client } from '@aws-sdk/client-apigatewayv2';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import type { Kafka } from 'kafkajs';
import { scopeKey, scopesOf, type AwsScope } from '../services/shared/aws-scope.js';
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

// The pipeline's AWS side (the snapshotter, the CloudTrail listener, the accounts they read): the commands that read
// AWS import this module when they start, so that the others start without the AWS SDK.

type AssumedRole = ReturnType<typeof fromTemporaryCredentials>;

/** An account to read, and the credentials that read it (none: the process's own). */
export interface AwsAccount {
  accountId: string;
  credentials?: AssumedRole;
}

function awsClientOptions(config: Config, region: string, credentials?: AssumedRole) {
  return { region, endpoint: config.awsEndpointUrl, retryMode: 'adaptive' as const, maxAttempts: 10, credentials };
}

/**
 * The accounts to read: each of AWS_ROLE_ARNS through its role, or else the credentials' own. Every role is
 * assumed once here, so that one which cannot be stops the start before anything is written.
 */
export async function resolveAccounts(config: Config): Promise<AwsAccount[]> {
  if (config.awsRoles.length === 0) return [{ accountId: await ownAccountId(config) }];
  return Promise.all(config.awsRoles.map(async ({ arn, accountId }) => {
    // The SDK clients given these credentials assume the role again before they expire.
    const credentials = fromTemporaryCredentials({
      params: { RoleArn: arn, RoleSessionName: 'apigw-stream' },
      clientConfig: { region: config.regions[0], endpoint: config.awsEndpointUrl },
    });
    try {
      await credentials();
    } catch (error) {
      throw new DependencyError('AWS_ROLE_ARNS', `cannot assume ${arn} (${describeError(error)}): check the role's trust policy and the credentials`, error);
    }
    return { accountId, credentials };
  }));
}

async function ownAccountId(config: Config): Promise<string> {
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

/** The two sources of change events, sharing one emitter and one API Gateway client per account and region. */
export async function openSources(options: PipelineParts & {
  config: Config; logger: Logger; metrics: Metrics; interactive: boolean;
  kafka: Kafka; emitter: ChangeEmitter; accounts: AwsAccount[]; closers: (() => Promise<void>)[];
}): Promise<{ snapshotter?: Snapshotter; listener?: CloudTrailListener }> {
  const { config, logger, metrics, kafka, emitter, accounts, closers } = options;
  const scopes = scopesOf(accounts.map((account) => account.accountId), config.regions);
  const credentialsOf = new Map(accounts.map((account) => [account.accountId, account.credentials]));
  /** One client per account and region, made on first use. */
  const perScope = <T>(make: (scope: AwsScope, credentials?: AssumedRole) => T) => {
    const made = new Map<string, T>();
    const clientFor = (scope: AwsScope) => {
      const key = scopeKey(scope);
      if (!made.has(key)) made.set(key, make(scope, credentialsOf.get(scope.accountId)));
      return made.get(key)!;
    };
    return { clientFor, made };
  };
  const apigateway = perScope((scope, credentials) => new ApiGatewayV2Client(awsClientOptions(config, scope.region, credentials)));
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
    // Our own token bucket and backoff pace LookupEvents; the SDK retries only a little underneath.
    const trails = perScope((scope, credentials) => new CloudTrailClient({ region: scope.region, endpoint: config.cloudtrailEndpointUrl, maxAttempts: 2, credentials }));
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
