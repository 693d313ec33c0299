import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Pipeline } from '../../cli/pipeline.js';
import { resetEmulator, seedSampleInventory } from '../../stack/sample-inventory.js';
import { emulatorInventory } from '../support/emulator-state.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { awsClient, motoEndpoint, rows, testEnvironment } from '../support/harness.js';

const REGION = 'ca-west-1';
const aws = awsClient(REGION);

describe('a throttled API Gateway: the snapshot backs off and still reads everything', { timeout: 180_000 }, () => {
  // Every other GetApis or GetIntegrations call is refused the way API Gateway throttles (HTTP 429).
  let calls = 0;
  let throttled = 0;
  let proxy: Awaited<ReturnType<typeof startFaultProxy>>;
  let env: ReturnType<typeof testEnvironment>;
  let pipeline: Pipeline;
  before(async () => {
    await resetEmulator(motoEndpoint);
    await seedSampleInventory(aws, { httpApis: 4, websocketApis: 3, prefix: 'throttled' });
    proxy = await startFaultProxy(motoEndpoint, (request) => {
      if (!request.url?.startsWith('/v2/apis') || ++calls % 2 === 1) return 'forward';
      throttled += 1;
      return { status: 429, headers: { 'Content-Type': 'application/json', 'x-amzn-ErrorType': 'TooManyRequestsException' }, body: '{"message":"Too Many Requests"}' };
    });
    env = testEnvironment({ region: REGION, extra: { AWS_ENDPOINT_URL: proxy.url } });
    pipeline = await env.open({ snapshot: true, sink: true });
  });
  after(async () => {
    await pipeline?.close();
    await proxy?.close();
    aws.destroy();
    await env?.cleanup();
  });

  it('completes the region with every integration, each once', async () => {
    const result = await pipeline.snapshotter!.runOnce();
    assert.ok(throttled >= 7, `calls were throttled (${throttled} of ${calls})`);
    assert.deepEqual(result.regions.map((region) => [region.region, region.completed, region.error]), [[REGION, true, undefined]]);
    await pipeline.sink!.waitForCatchUp();
    const expected = [...(await emulatorInventory(aws, REGION)).keys()].sort();
    assert.equal(result.regions[0]!.integrations, expected.length);
    const live = await rows<{ arn: string }>(pipeline, `SELECT arn FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE is_deleted = 0 ORDER BY arn`);
    assert.deepEqual(live.map((row) => row.arn), expected);
    const [{ versions }] = await rows<{ versions: string }>(pipeline, `SELECT count() AS versions FROM ${env.table('aws_apigatewayv2_api_integrations_history')}`) as [{ versions: string }];
    assert.equal(Number(versions), expected.length, 'one history row per integration');
  });
});
