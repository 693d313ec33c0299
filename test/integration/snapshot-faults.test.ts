import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Pipeline } from '../../cli/pipeline.js';
import { createChangeCodec } from '../../services/shared/codec.js';
import { sleep } from '../../services/shared/retry.js';
import { resetEmulator, seedSampleInventory } from '../../stack/sample-inventory.js';
import { startApigwStream } from '../support/cli.js';
import { emulatorInventory } from '../support/emulator-state.js';
import { startFaultProxy, type Fault } from '../support/fault-proxy.js';
import { awsClient, motoEndpoint, registryUrl, rows, testEnvironment, topicMessages } from '../support/harness.js';

const REGION = 'ca-west-1';
const aws = awsClient(REGION);

describe('the snapshot under a misbehaving API Gateway', { timeout: 240_000 }, () => {
  // API Gateway's answers to the integration lists go through a proxy the test steers.
  let fault: () => Fault = () => 'forward';
  let listCalls = 0;
  let apiCount = 0;
  let proxy: Awaited<ReturnType<typeof startFaultProxy>>;
  const environments: ReturnType<typeof testEnvironment>[] = [];
  const environment = () => {
    const env = testEnvironment({ region: REGION, extra: { AWS_ENDPOINT_URL: proxy.url } });
    environments.push(env);
    return env;
  };
  before(async () => {
    await resetEmulator(motoEndpoint);
    apiCount = (await seedSampleInventory(aws, { httpApis: 4, websocketApis: 3, prefix: 'faults' })).length;
    proxy = await startFaultProxy(motoEndpoint, (request) => {
      if (!request.url?.startsWith('/v2/apis')) return 'forward';
      listCalls += 1;
      return fault();
    });
  });
  after(async () => {
    await proxy?.close();
    aws.destroy();
    for (const env of environments) await env.cleanup();
  });

  it('throttled (every other list call answered 429): it backs off and still completes with every integration once', async () => {
    let throttled = 0;
    listCalls = 0;
    fault = () => {
      if (listCalls % 2 === 1) return 'forward';
      throttled += 1;
      return { status: 429, headers: { 'Content-Type': 'application/json', 'x-amzn-ErrorType': 'TooManyRequestsException' }, body: '{"message":"Too Many Requests"}' };
    };
    const env = environment();
    const pipeline: Pipeline = await env.open({ snapshot: true, sink: true });
    try {
      const result = await pipeline.snapshotter!.runOnce();
      assert.ok(throttled >= apiCount, `calls were throttled (${throttled} of ${listCalls})`);
      assert.deepEqual(result.regions.map((region) => [region.region, region.completed, region.error]), [[REGION, true, undefined]]);
      await pipeline.sink!.waitForCatchUp();
      const expected = [...(await emulatorInventory(aws, REGION)).keys()].sort();
      assert.equal(result.regions[0]!.integrations, expected.length);
      const live = await rows<{ arn: string }>(pipeline, `SELECT arn FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE is_deleted = 0 ORDER BY arn`);
      assert.deepEqual(live.map((row) => row.arn), expected);
      const [{ versions }] = await rows<{ versions: string }>(pipeline, `SELECT count() AS versions FROM ${env.table('aws_apigatewayv2_api_integrations_history')}`) as [{ versions: string }];
      assert.equal(Number(versions), expected.length, 'one history row per integration');
    } finally {
      await pipeline.close();
    }
  });

  it('interrupted (SIGINT while slow answers keep it busy): `snapshot --once` stops at once, says so, and writes no completion marker', async () => {
    listCalls = 0;
    fault = () => ({ delayMs: 1000 });
    const env = environment();
    const snapshot = startApigwStream(['snapshot', '--once'], { ...env.env, APIGW_SNAPSHOT_CONCURRENCY: '1', LOG_LEVEL: 'warn' });
    while (listCalls < 4) await sleep(100); // the API list, then integration lists one at a time
    snapshot.child.kill('SIGINT');
    const code = await Promise.race([snapshot.exited, sleep(5_000).then(() => 'still running')]);
    assert.equal(code, 130, `exits 130 within 5 s of SIGINT; its stderr: ${snapshot.log()}`);
    assert.equal(snapshot.log().trim().split('\n').at(-1), `apigw-stream: snapshot interrupted by SIGINT in ${REGION}: no completion marker written there, so nothing is deleted`);
    assert.ok(listCalls < apiCount + 1, `it stopped listing (${listCalls} list calls of ${apiCount + 1})`);

    const codec = createChangeCodec({ registryUrl, topic: env.config.topic });
    const ops = await Promise.all((await topicMessages(env.config.topic)).map(async ({ key, value }) => (await codec.decode(key, value)).value.op));
    assert.ok(!ops.includes('SNAPSHOT_COMPLETE'), `no completion marker on the topic: ${ops.join(', ')}`);
  });
});
