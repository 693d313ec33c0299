import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeleteIntegrationCommand, UpdateIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import type { Pipeline } from '../../cli/pipeline.js';
import { withAdmin } from '../../services/shared/kafka.js';
import { sleep } from '../../services/shared/retry.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { currentTimeouts, queryJson, startApigwStream } from '../support/cli.js';
import { awsClient, motoEndpoint, plainKafka, testEnvironment, waitFor } from '../support/harness.js';

const REGION = 'ap-south-2';
const aws = awsClient(REGION);

describe('the topic is deleted under a running sink', { timeout: 300_000 }, () => {
  let env: ReturnType<typeof testEnvironment>;
  let producers: Pipeline;
  let sink: ReturnType<typeof startApigwStream>;
  let apis: SampleApi[];
  let gone: SampleApi;

  const logLines = (text: string) => sink.log().split('\n').filter((line) => line.includes(text));

  before(async () => {
    await resetEmulator(motoEndpoint);
    apis = await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'deleted' });
    env = testEnvironment({ region: REGION, extra: { LOG_LEVEL: 'fatal' } });
    sink = startApigwStream(['sink'], { ...env.env, LOG_LEVEL: 'info' });
    // Closed before the topic is deleted: a running snapshotter would make it again within seconds.
    const first = await env.open({ snapshot: true });
    await first.snapshotter!.runOnce();
    // A version late in the old topic, at an offset the new topic's first snapshot does not reach.
    gone = apis.find((api) => api.protocol === 'WEBSOCKET')!;
    await aws.send(new UpdateIntegrationCommand({ ApiId: gone.apiId, IntegrationId: gone.integrationIds[0], TimeoutInMillis: 5151 }));
    await first.snapshotter!.runOnce();
    await first.close();
  });
  after(async () => {
    sink?.child.kill('SIGKILL');
    await producers?.close();
    aws.destroy();
    await env?.cleanup();
  });

  it('the sink says so and restarts its consumer with backoff; once the topic is made again, it applies its events and deletions', async () => {
    const integrations = apis.reduce((n, api) => n + api.integrationIds.length, 0);
    const goneArn = `arn:aws:apigateway:${REGION}::/apis/${gone.apiId}/integrations/${gone.integrationIds[0]}`;
    await waitFor('the sink to apply both snapshots', async () => (await currentTimeouts(env.env))?.get(goneArn) === 5151, 60_000).catch(sink.withLog);

    await withAdmin(plainKafka(), (admin) => admin.deleteTopics({ topics: [env.config.topic] }));
    const missing = `the topic ${env.config.topic} does not exist (deleted?)`;
    // kafkajs retries the consumer's fetches for about a minute before it gives up and the sink restarts it.
    await waitFor('the sink to say that its topic is gone', async () => logLines(missing).length > 0, 150_000).catch(sink.withLog);
    const restartsBefore = logLines(missing).length;
    await sleep(15_000);
    // kafkajs alone restarts it every 200 ms or so (dozens of times in this while); with backoff (1 s doubling to 30
    // s) at most 5.
    const restarts = logLines(missing).length - restartsBefore;
    assert.ok(restarts <= 5, `restarted ${restarts} times in 15 s; the sink's log: ${sink.log().slice(-1500)}`);

    // Made again, the topic's offsets start over, below the ones the tables hold for each integration: a sink that
    // took its events for redeliveries would apply none of them.
    const api = apis.find((candidate) => candidate.protocol === 'HTTP')!;
    const arn = `arn:aws:apigateway:${REGION}::/apis/${api.apiId}/integrations/${api.integrationIds[0]}`;
    await aws.send(new UpdateIntegrationCommand({ ApiId: api.apiId, IntegrationId: api.integrationIds[0], TimeoutInMillis: 4242 }));
    // Nor is a stored offset a guide to whether the new topic's first snapshot, which no longer sees this one, came
    // later than its state.
    await aws.send(new DeleteIntegrationCommand({ ApiId: gone.apiId, IntegrationId: gone.integrationIds[0] }));
    // A snapshotter's start makes the topic again (and a running one checks for it every 10 s).
    producers = await env.open({ snapshot: true });
    const result = await producers.snapshotter!.runOnce();
    assert.deepEqual(result.regions.map((region) => region.completed), [true], result.regions[0]?.error);
    await waitFor('the change to reach the current-state table', async () => (await currentTimeouts(env.env))?.get(arn) === 4242, 120_000).catch(sink.withLog);
    // The first read into a new topic is seen whole from its first offset, so its marker deletes what it did not see.
    await waitFor('the deletion to reach the current-state table', async () => (await currentTimeouts(env.env))?.has(goneArn) === false, 60_000).catch(sink.withLog);
    assert.equal((await currentTimeouts(env.env))?.size, integrations - 1, 'every other integration stays');

    const versions = await queryJson<{ version: number }[]>(['history', arn], env.env);
    assert.deepEqual(versions.map((row) => row.version), [1, 2], 'two versions of the changed integration, none repeated');
    const goneVersions = await queryJson<{ version: number; operation: string }[]>(['history', goneArn], env.env);
    assert.deepEqual(goneVersions.map((row) => [row.version, row.operation]), [[1, 'CREATE'], [2, 'UPDATE'], [3, 'DELETE']]);
    const [{ changes }] = await queryJson<{ changes: number }[]>(['who'], env.env) as [{ changes: number }];
    assert.equal(Number(changes), integrations + 3, 'one history row per integration, and one for each change and the deletion: nothing written twice');

    sink.child.kill('SIGTERM');
    const code = await Promise.race([sink.exited, sleep(30_000).then(() => 'still running')]);
    assert.equal(code, 0, `the sink exits 0 on SIGTERM; its log: ${sink.log().slice(-1500)}`);
  });
});
