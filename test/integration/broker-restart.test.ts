import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpdateIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import type { Pipeline } from '../../cli/pipeline.js';
import { sleep } from '../../services/shared/retry.js';
import { stackDown, stackUp } from '../../stack/index.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { currentTimeouts, queryJson, startApigwStream } from '../support/cli.js';
import { startCloudTrailServer, type CloudTrailServer } from '../support/cloudtrail-server.js';
import { awsClient, motoEndpoint, runListener, testEnvironment, waitFor } from '../support/harness.js';
import { PRINCIPALS, createRecordingClient } from '../support/recorded-changes.js';

const REGION = 'eu-south-1';
const aws = awsClient(REGION);
const quiet = () => undefined;

describe('the Kafka broker goes away and comes back', { timeout: 300_000 }, () => {
  let env: ReturnType<typeof testEnvironment>;
  // The snapshotter and the CloudTrail listener in this process; the sink as the real executable, which must also
  // stop cleanly afterwards.
  let producers: Pipeline;
  let trail: CloudTrailServer;
  let listener: ReturnType<typeof runListener>;
  let sink: ReturnType<typeof startApigwStream>;
  // A CloudTrail listener as the real executable, asked to stop while the broker is away: each of its polls commits a
  // transaction, which waits for the broker without end. Its own topic, so that it fences no other listener.
  let listenService: ReturnType<typeof startApigwStream>;
  let apis: SampleApi[];

  const query = <T>(args: string[]) => queryJson<T>(args, env.env);

  before(async () => {
    await resetEmulator(motoEndpoint);
    apis = await seedSampleInventory(aws, { httpApis: 3, websocketApis: 2, prefix: 'restart' });
    trail = await startCloudTrailServer();
    // The clients in this process log the outage's connection errors; only the sink's log is kept, for failures.
    env = testEnvironment({ region: REGION, extra: { AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, APIGW_LISTENER_POLL_SECONDS: '0.3', APIGW_LISTENER_LOOKBACK_HOURS: '1', LOG_LEVEL: 'fatal' } });
    producers = await env.open({ snapshot: true, listen: true });
    sink = startApigwStream(['sink'], { ...env.env, LOG_LEVEL: 'info' });
    listenService = startApigwStream(['listen'], { ...env.env, LOG_LEVEL: 'info', APIGW_TOPIC: `${env.config.topic}.grace` });
    await producers.snapshotter!.runOnce();
    listener = runListener(producers);
  });
  after(async () => {
    // Whatever happened, the next test files find the broker up.
    await stackUp(quiet);
    sink?.child.kill('SIGKILL');
    listenService?.child.kill('SIGKILL');
    await listener?.stop();
    await producers?.close();
    await trail?.close();
    aws.destroy();
    await env?.cleanup();
  });

  it('the sink, the snapshotter and the listener carry on, a change made meanwhile reaches the tables once, and the sink then stops cleanly; a service asked to stop meanwhile leaves after its grace period', async (t) => {
    const integrations = apis.reduce((n, api) => n + api.integrationIds.length, 0);
    await waitFor('the sink to apply the first snapshot', async () => (await currentTimeouts(env.env))?.size === integrations, 60_000)
      .catch(sink.withLog);
    const api = apis.find((candidate) => candidate.protocol === 'HTTP' && candidate.integrationIds.length >= 2)!;
    const arn = `arn:aws:apigateway:${REGION}::/apis/${api.apiId}/integrations/${api.integrationIds[0]}`;

    const said: string[] = [];
    await stackDown((line) => said.push(line), ['kafka']);
    if (!said.some((line) => line.endsWith('stopped'))) {
      t.skip(`the broker was not started by this checkout's stack, so this test cannot stop it (${said.join('; ')})`);
      return;
    }
    await sleep(5_000); // the sink's fetches and the group's heartbeats fail meanwhile
    // The listen service's poll waits for the broker without end; a stop request waits 20 s for it.
    listenService.child.kill('SIGTERM');
    const left = await Promise.race([listenService.exited, sleep(40_000).then(() => 'still running')]);
    assert.equal(left, 143, `the listen service leaves 20 s after SIGTERM, with the signal's exit code; its log: ${listenService.log().slice(-1500)}`);
    assert.match(listenService.log(), /still shutting down, most likely a send waiting for Kafka: leaving without it/);
    await aws.send(new UpdateIntegrationCommand({ ApiId: api.apiId, IntegrationId: api.integrationIds[0], TimeoutInMillis: 7777 }));
    await stackUp(quiet);

    const result = await producers.snapshotter!.runOnce();
    assert.deepEqual(result.regions.map((region) => region.completed), [true], result.regions[0]?.error);
    await waitFor('the change to reach the current-state table', async () => (await currentTimeouts(env.env))?.get(arn) === 7777, 120_000)
      .catch(sink.withLog);
    const versions = await query<{ version: number }[]>(['history', arn]);
    assert.deepEqual(versions.map((row) => row.version), [1, 2], 'two versions of the changed integration, none repeated');
    const [{ changes }] = await query<{ changes: number }[]>(['who']) as [{ changes: number }];
    assert.equal(Number(changes), integrations + 1, 'one history row per integration and one for the change');

    // The listener's transactional producer carries on too: a change seen in CloudTrail now arrives with who made it.
    const other = `arn:aws:apigateway:${REGION}::/apis/${api.apiId}/integrations/${api.integrationIds[1]}`;
    await createRecordingClient({ aws, trail, region: REGION }).updateIntegration(PRINCIPALS.bob, { ApiId: api.apiId, IntegrationId: api.integrationIds[1], TimeoutInMillis: 8888 });
    await waitFor('the CloudTrail change to reach the tables', async () => (await currentTimeouts(env.env))?.get(other) === 8888, 60_000);
    const changed = await query<{ principal_arn: string | null }[]>(['history', other]);
    assert.equal(changed.at(-1)?.principal_arn, PRINCIPALS.bob.arn);

    sink.child.kill('SIGTERM');
    const code = await Promise.race([sink.exited, sleep(30_000).then(() => 'still running')]);
    assert.equal(code, 0, `the sink exits 0 on SIGTERM after the broker came back; its log: ${sink.log().slice(-1500)}`);
  });
});
