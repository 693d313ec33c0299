import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { UpdateIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import { STACK_MSK_IAM, STACK_MSK_IAM_SESSION_MS, stackKafkaCaFile } from '../../stack/parts.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { complaints, currentTimeouts, startApigwStream } from '../support/cli.js';
import { startCloudTrailServer, type CloudTrailServer } from '../support/cloudtrail-server.js';
import { awsClient, motoEndpoint, ports, saslTlsBrokers, testEnvironment, waitFor } from '../support/harness.js';

const REGION = 'ca-central-1';
const aws = awsClient(REGION);

describe('brokers behind Amazon MSK\'s IAM access control (the local stack\'s stand-in for it)', { timeout: 240_000 }, () => {
  let trail: CloudTrailServer;
  let env: ReturnType<typeof testEnvironment>;
  let apis: SampleApi[];
  before(async () => {
    await resetEmulator(motoEndpoint);
    apis = await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'msk' });
    trail = await startCloudTrailServer();
    env = testEnvironment({
      region: REGION,
      extra: {
        // Over TLS, as MSK takes IAM access control (its port 9098).
        KAFKA_BROKERS: saslTlsBrokers.join(','), KAFKA_SSL_CA_FILE: stackKafkaCaFile(ports.kafka), KAFKA_SASL_MECHANISM: 'aws-msk-iam', KAFKA_AWS_REGION: STACK_MSK_IAM.region,
        AWS_ACCESS_KEY_ID: STACK_MSK_IAM.accessKeyId, AWS_SECRET_ACCESS_KEY: STACK_MSK_IAM.secretAccessKey,
        AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, APIGW_LISTENER_LOOKBACK_HOURS: '1', APIGW_SNAPSHOT_INTERVAL_SECONDS: '5', LOG_LEVEL: 'info',
      },
    });
  });
  after(async () => {
    await trail?.close();
    aws.destroy();
    await env?.cleanup();
  });

  it('`run` produces and consumes through it, and goes on after its sessions end and are authenticated again', async () => {
    const { child: run, exited, log, withLog } = startApigwStream(['run'], env.env);
    const integrations = apis.reduce((n, api) => n + api.integrationIds.length, 0);
    try {
      await waitFor('the first snapshot in the current-state table', async () => (await currentTimeouts(env.env))?.size === integrations, 90_000).catch(withLog);
      // Every connection's session ends within this; one not authenticated again is closed by the broker.
      await sleep(2 * STACK_MSK_IAM_SESSION_MS + 1000);
      const [api] = apis;
      await aws.send(new UpdateIntegrationCommand({ ApiId: api!.apiId, IntegrationId: api!.integrationIds[0], TimeoutInMillis: 7373 }));
      await waitFor('a snapshot after the sessions ended to carry the change', async () => [...(await currentTimeouts(env.env))?.values() ?? []].includes(7373), 60_000).catch(withLog);
    } finally {
      run.kill('SIGTERM');
    }
    assert.equal(await exited, 0, `run exits 0 on SIGTERM; its log:\n${log().slice(-2000)}`);
    assert.deepEqual(complaints(log()), [], 'no warning or error: no connection was refused or closed under it');
    assert.match(log(), /"sasl":"aws-msk-iam","region":"us-east-1","tls":true/, 'its start line says how it authenticates');
  });
});
