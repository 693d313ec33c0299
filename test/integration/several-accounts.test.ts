import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiGatewayV2Client, DeleteApiCommand } from '@aws-sdk/client-apigatewayv2';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { Pipeline } from '../../cli/pipeline.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { apigwStream } from '../support/cli.js';
import { awsClient, motoEndpoint, rows, testEnvironment } from '../support/harness.js';

const REGION = 'eu-south-1';
const OTHER_ACCOUNT = '111111111111';

describe('several accounts: one snapshotter per account, one topic, one sink', { timeout: 180_000 }, () => {
  const first = awsClient(REGION);
  let second: ApiGatewayV2Client;
  // The second account's credentials, as its own snapshotter process gets them (the emulator keeps each account apart).
  let secondCredentials: Record<string, string>;
  let env: ReturnType<typeof testEnvironment>;
  let sink: Pipeline;
  let firstApis: SampleApi[];
  let secondApis: SampleApi[];

  const liveByAccount = async () => {
    const live = await rows<{ account_id: string; n: string }>(sink,
      `SELECT account_id, count() AS n FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL GROUP BY account_id ORDER BY account_id`);
    return Object.fromEntries(live.map((row) => [row.account_id, Number(row.n)]));
  };
  const snapshotAs = async (credentials: Record<string, string>) => {
    const result = await apigwStream(['snapshot', '--once'], { ...env.env, ...credentials });
    assert.equal(result.status, 0, result.stderr);
    await sink.sink!.waitForCatchUp();
  };
  const count = (apis: SampleApi[]) => apis.reduce((n, api) => n + api.integrationIds.length, 0);

  before(async () => {
    await resetEmulator(motoEndpoint);
    const sts = new STSClient({ region: REGION, endpoint: motoEndpoint });
    const { Credentials } = await sts.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${OTHER_ACCOUNT}:role/apigw-reader`, RoleSessionName: 'apigw-stream' }));
    sts.destroy();
    const credentials = { accessKeyId: Credentials!.AccessKeyId!, secretAccessKey: Credentials!.SecretAccessKey!, sessionToken: Credentials!.SessionToken! };
    secondCredentials = { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_SESSION_TOKEN: credentials.sessionToken };
    second = new ApiGatewayV2Client({ region: REGION, endpoint: motoEndpoint, credentials });
    firstApis = await seedSampleInventory(first, { httpApis: 2, websocketApis: 1, prefix: 'first' });
    secondApis = await seedSampleInventory(second, { httpApis: 1, websocketApis: 1, prefix: 'second' });
    env = testEnvironment({ region: REGION });
    sink = await env.open({ sink: true });
  });
  after(async () => {
    await sink?.close();
    first.destroy();
    second?.destroy();
    await env?.cleanup();
  });

  it('keeps each account\'s integrations under its own id, and a snapshot of one deletes nothing of the other', async () => {
    await snapshotAs({});
    await snapshotAs(secondCredentials);
    assert.deepEqual(await liveByAccount(), { '123456789012': count(firstApis), [OTHER_ACCOUNT]: count(secondApis) });

    // An API goes in the second account; only that account's next snapshot sees it, and the first's deletes nothing.
    const gone = secondApis.find((api) => api.integrationIds.length > 0)!;
    await second.send(new DeleteApiCommand({ ApiId: gone.apiId }));
    await snapshotAs({});
    assert.deepEqual(await liveByAccount(), { '123456789012': count(firstApis), [OTHER_ACCOUNT]: count(secondApis) });
    await snapshotAs(secondCredentials);
    assert.deepEqual(await liveByAccount(), { '123456789012': count(firstApis), [OTHER_ACCOUNT]: count(secondApis) - gone.integrationIds.length });
  });
});
