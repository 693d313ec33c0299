import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeleteIntegrationCommand, UpdateIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import type { Counter } from 'prom-client';
import type { Pipeline } from '../../cli/pipeline.js';
import { createChangeCodec } from '../../services/shared/codec.js';
import { withAdmin } from '../../services/shared/kafka.js';
import { integrationArn } from '../../services/shared/integration-model.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { emulatorInventory } from '../support/emulator-state.js';
import { cloudTrailSource, integrationChange } from '../support/changes.js';
import { awsClient, motoEndpoint, plainKafka, produce, registryUrl, rows, testEnvironment, waitFor } from '../support/harness.js';

/**
 * Inside a describe: a pipeline of its own (no write or read retries unless `retries`: the first failure is the one
 * that counts) over an inventory seeded in `region`, snapshotted once into the tables before the tests.
 */
function snapshotted(region: string, partitions: number, seed: { httpApis: number; websocketApis: number; prefix: string }, retries = 0) {
  const extra = { APIGW_SINK_WRITE_RETRIES: String(retries), LOG_LEVEL: 'warn' };
  const world = { env: testEnvironment({ region, partitions, extra, logLines }), aws: awsClient(region) } as {
    env: ReturnType<typeof testEnvironment>; aws: ReturnType<typeof awsClient>; pipeline: Pipeline; apis: SampleApi[];
  };
  before(async () => {
    await resetEmulator(motoEndpoint);
    world.apis = await seedSampleInventory(world.aws, seed);
    world.pipeline = await world.env.open({ snapshot: true, sink: true });
    await world.pipeline.snapshotter!.runOnce();
    await world.pipeline.sink!.waitForCatchUp();
  });
  after(async () => {
    await world.pipeline?.close();
    world.aws.destroy();
    await world.env.cleanup();
  });
  return world;
}

// What the services of both describes said, from the moment each test clears it.
const logLines: string[] = [];
/** The log lines as `level component message`. */
const said = () => logLines.map((line) => JSON.parse(line) as { level: number; component?: string; msg: string }).map(({ level, component, msg }) => `${level} ${component} ${msg}`);

/**
 * Takes a snapshot while `table` is detached, until `failures` counts the sink's failure, checks that nothing of it
 * is committed, runs `meanwhile`, and attaches the table again. The log is cleared first.
 */
async function snapshotWithout(
  world: ReturnType<typeof snapshotted>, table: string, failures: Counter, what: string, meanwhile?: () => Promise<unknown>,
): Promise<void> {
  const { pipeline } = world;
  logLines.length = 0;
  await pipeline.clickhouse!.command({ query: `DETACH TABLE ${table}` });
  await pipeline.snapshotter!.runOnce();
  await waitFor(`the failed ${what}`, async () => ((await failures.get()).values[0]?.value ?? 0) >= 1);
  assert.equal(await pipeline.sink!.caughtUp(), false, `the offsets of what the failed ${what} was for are not committed`);
  await meanwhile?.();
  await pipeline.clickhouse!.command({ query: `ATTACH TABLE ${table}` });
}

describe('a ClickHouse write that fails for good loses nothing and duplicates nothing', { timeout: 180_000 }, () => {
  const world = snapshotted('eu-west-3', 2, { httpApis: 3, websocketApis: 2, prefix: 'wfail' });

  it('commits nothing of the failed write, then applies every change once from the committed offsets', async () => {
    const { env, aws, pipeline, apis } = world;
    const CURRENT = env.table('aws_apigatewayv2_api_integrations');
    const HISTORY = env.table('aws_apigatewayv2_api_integrations_history');
    const [changedApi] = apis;
    const changedIntegration = changedApi!.integrationIds[0]!;
    await aws.send(new UpdateIntegrationCommand({ ApiId: changedApi!.apiId, IntegrationId: changedIntegration, Description: 'changed while ClickHouse refused writes' }));

    // The engine refuses the history insert (the table is gone) for the snapshot that carries the change; the sink
    // says it is not ready meanwhile.
    await snapshotWithout(world, HISTORY, env.metrics.sinkWriteFailures, 'write',
      () => waitFor('the sink not ready while its rows are not written', async () => pipeline.sink!.health().write_failed));

    // The sink consumes again from its committed offsets (the snapshot's later batches find the failure).
    await pipeline.snapshotter!.runOnce();
    await pipeline.sink!.waitForCatchUp();
    assert.equal(pipeline.sink!.health().ok, true, 'ready again');

    const live = await rows<{ arn: string; description: string | null }>(pipeline,
      `SELECT arn, description FROM ${CURRENT} FINAL WHERE is_deleted = 0 ORDER BY arn`);
    assert.deepEqual(live.map((row) => row.arn), [...(await emulatorInventory(aws, 'eu-west-3')).keys()].sort());
    const changed = live.find((row) => row.arn.endsWith(`/apis/${changedApi!.apiId}/integrations/${changedIntegration}`));
    assert.equal(changed?.description, 'changed while ClickHouse refused writes');

    const [counts] = await rows<{ total: string; distinct_versions: string; updates: string }>(pipeline,
      `SELECT count() AS total, uniqExact(arn, version) AS distinct_versions, countIf(operation = 'UPDATE') AS updates FROM ${HISTORY}`);
    assert.equal(Number(counts!.total), Number(counts!.distinct_versions), 'no version of an integration is in history twice');
    assert.equal(Number(counts!.total), live.length + 1, 'one CREATE per integration and the one UPDATE');
    assert.equal(Number(counts!.updates), 1);
    const counted = (await env.metrics.historyRows.get()).values.reduce((sum, { value }) => sum + value, 0);
    assert.equal(counted, Number(counts!.total), 'the history-rows metric counts rows written, not rows applied');

    // The log says what happened, and nothing else: no error line of kafkajs's for the batches the sink turned back
    // while it started over. It starts over as often as the table stays away, each time failing the same write; and
    // starting over reads the tables, so a read made before the table is back fails too, and says so (as the next
    // describe's read does).
    assert.deepEqual([...new Set(said())].filter((line) => !line.includes('after a failed read') && !line.startsWith('50 sink ClickHouse read failed after its retries')), [
      '50 sink ClickHouse write failed after its retries; nothing of it is committed',
      '40 sink resuming after a failed write: consuming again from the committed offsets',
    ]);
  });
});

/** Sends a CloudTrail change of the world's first integration to its topic, as the listener would. */
async function sendChange(world: ReturnType<typeof snapshotted>, eventId: string, timeout: number) {
  const { env, apis } = world;
  const region = env.config.regions[0]!;
  const change = integrationChange({
    region, apiId: apis[0]!.apiId, integrationId: apis[0]!.integrationIds[0]!, source: cloudTrailSource(eventId), eventTime: Date.now(), timeout,
  });
  const codec = createChangeCodec({ registryUrl, topic: env.config.topic });
  await codec.register();
  await produce(env.config.topic, [await codec.encode(change, change)]);
  return change;
}

describe('a ClickHouse write that fails for good with nothing arriving after it', { timeout: 180_000 }, () => {
  const world = snapshotted('ca-west-1', 1, { httpApis: 1, websocketApis: 1, prefix: 'quiet' });

  it('starts over by itself once the table is back, and writes the change once', async () => {
    const { env, pipeline } = world;
    const HISTORY = env.table('aws_apigatewayv2_api_integrations_history');
    await pipeline.clickhouse!.command({ query: `DETACH TABLE ${HISTORY}` });
    // One change, and then nothing: no later batch comes to find that its write failed.
    const change = await sendChange(world, 'ct-quiet', 1234);
    await waitFor('the sink not ready while the change is not written', async () => pipeline.sink!.health().write_failed);
    await pipeline.clickhouse!.command({ query: `ATTACH TABLE ${HISTORY}` });

    await pipeline.sink!.waitForCatchUp(60_000);
    assert.equal(pipeline.sink!.health().ok, true, 'ready again');
    const history = await rows<{ timeout: number }>(pipeline,
      `SELECT JSONExtractInt(after, 'timeout_in_millis') AS timeout FROM ${HISTORY} WHERE arn = {arn:String} AND cloudtrail_event_id = 'ct-quiet'`, { arn: change.arn });
    assert.deepEqual(history, [{ timeout: 1234 }], 'written once');
  });
});

describe('stopping while a ClickHouse write waits out its retries', { timeout: 180_000 }, () => {
  // The default retries: 12, up to 15 s apart, about two and a half minutes in all.
  const world = snapshotted('ap-south-2', 1, { httpApis: 1, websocketApis: 0, prefix: 'stop' }, 12);

  it('stops without waiting out the rest, committing nothing of the write', { timeout: 60_000 }, async () => {
    const { env, pipeline } = world;
    // A failure the sink retries: the engine refuses inserts into a table with too many parts (code 252).
    await pipeline.clickhouse!.command({ query: `ALTER TABLE ${env.table('aws_apigatewayv2_api_integrations_history')} MODIFY SETTING parts_to_throw_insert = 1` });
    logLines.length = 0;
    await sendChange(world, 'ct-stop', 4321);
    await waitFor('a retried write', async () => said().includes('40 sink ClickHouse write failed; retrying'));

    await pipeline.close();
    assert.ok(said().includes('50 sink ClickHouse write failed after its retries; nothing of it is committed'), said().join('\n'));
    const [end] = await withAdmin(plainKafka(), (admin) => admin.fetchTopicOffsets(env.config.topic));
    const [group] = await withAdmin(plainKafka(), (admin) => admin.fetchOffsets({ groupId: env.config.sinkGroupId, topics: [env.config.topic] }));
    assert.equal(Number(group!.partitions[0]!.offset), Number(end!.high) - 1, 'everything committed but the change whose write failed');
  });
});

describe('a ClickHouse read that fails for good, in the middle of a completion marker, loses nothing either', { timeout: 180_000 }, () => {
  // One partition: the marker that deletes the integration is partition 0's, the one that also retires vanished APIs.
  const world = snapshotted('il-central-1', 1, { httpApis: 2, websocketApis: 1, prefix: 'rfail' });

  it('starts over from the committed offsets, and the marker still deletes what its snapshot no longer saw', async () => {
    const { env, aws, pipeline, apis } = world;
    const [api] = apis;
    const gone = api!.integrationIds[0]!;
    await aws.send(new DeleteIntegrationCommand({ ApiId: api!.apiId, IntegrationId: gone }));

    // The marker deletes the integration in memory, then reads which APIs are gone from a table that is gone.
    await snapshotWithout(world, env.table('aws_apigatewayv2_apis'), env.metrics.sinkReadFailures, 'read');
    await pipeline.sink!.waitForCatchUp();

    const arn = integrationArn('il-central-1', api!.apiId, gone);
    // What the log says: only the sink's two lines, as often as it started over while the table was gone.
    assert.deepEqual([...new Set(said())].sort(), [
      '40 sink resuming after a failed read: consuming again from the committed offsets',
      '50 sink ClickHouse read failed after its retries; starting over from the committed offsets',
    ]);

    // FINAL leaves deleted rows out: the last version says.
    const [current] = await rows<{ is_deleted: number }>(pipeline, `SELECT argMax(is_deleted, version) AS is_deleted FROM ${env.table('aws_apigatewayv2_api_integrations')} WHERE arn = {arn:String}`, { arn });
    assert.equal(Number(current!.is_deleted), 1, 'deleted in the current-state table');
    const history = await rows<{ operation: string }>(pipeline, `SELECT operation FROM ${env.table('aws_apigatewayv2_api_integrations_history')} WHERE arn = {arn:String} ORDER BY version`, { arn });
    assert.deepEqual(history.map((row) => row.operation), ['CREATE', 'DELETE'], 'one DELETE row');
    const live = await rows<{ arn: string }>(pipeline, `SELECT arn FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE is_deleted = 0 ORDER BY arn`);
    assert.deepEqual(live.map((row) => row.arn), [...(await emulatorInventory(aws, 'il-central-1')).keys()].sort());
  });
});
