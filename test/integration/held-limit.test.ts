import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Producer } from 'kafkajs';
import type { Pipeline } from '../../cli/pipeline.js';
import type { ChangeEmitter, Observation } from '../../services/shared/change-emitter.js';
import { integrationArn, mapIntegration } from '../../services/shared/integration-model.js';
import { cloudTrailSource, snapshotSource } from '../support/changes.js';
import { openEmitter, rows, testEnvironment } from '../support/harness.js';

const ACCOUNT = '123456789012';
const REGION = 'ap-south-2';
const PARTITIONS = 3;
const INTEGRATIONS = 600;
/** Far fewer than the inventory: the sink lets go of integrations and reads them back all through the test. */
const HELD = 50;
/** Integrations the closing snapshot no longer sees: its markers delete them. */
const VANISHED = 20;
const BASE_TIME = Date.UTC(2026, 10, 1);

const env = testEnvironment({ region: REGION, partitions: PARTITIONS, extra: { APIGW_SINK_HELD_INTEGRATIONS: String(HELD) } });
const HISTORY = env.table('aws_apigatewayv2_api_integrations_history');
const CURRENT = env.table('aws_apigatewayv2_api_integrations');

const integrationId = (i: number) => `int-${String(i).padStart(3, '0')}`;
const apiId = (i: number) => `api${i % 4}`;
const timeoutOf = (version: number) => 1_000 + version;

/** Version `version` of every integration (1: its creation), as the listener emits it, at a time of its own. */
const changes = (version: number): Observation[] => Array.from({ length: INTEGRATIONS }, (_, i) => ({
  account_id: ACCOUNT, region: REGION, api_id: apiId(i), integration_id: integrationId(i), op: version === 1 ? 'CREATE' as const : 'UPDATE' as const,
  event_time: BASE_TIME + version * 60_000, observed_at: BASE_TIME + version * 60_000, source: cloudTrailSource(`ev-${version}-${i}`), position: `ev-${version}-${i}`,
  api: { name: `held-${apiId(i)}`, protocol_type: 'HTTP', api_endpoint: null },
  after: mapIntegration(REGION, apiId(i), { IntegrationId: integrationId(i), IntegrationType: 'HTTP_PROXY', TimeoutInMillis: timeoutOf(version) }),
}));

/** One integration `id` of api0 with `timeout`, as a snapshot or the listener saw it at `at`. */
const observed = (id: string, at: { event: number; read: number }, source: Observation['source'], timeout = 3_000): Observation => ({
  account_id: ACCOUNT, region: REGION, api_id: 'api0', integration_id: id, op: source.type === 'SNAPSHOT' ? 'SNAPSHOT' : 'CREATE',
  event_time: at.event, observed_at: at.read, source, position: source.cloudtrail_event_id ?? source.snapshot_id!,
  api: { name: 'held-api0', protocol_type: 'HTTP', api_endpoint: null },
  after: mapIntegration(REGION, 'api0', { IntegrationId: id, IntegrationType: 'HTTP_PROXY', TimeoutInMillis: timeout }),
});

const metric = async (name: string) => Number((await env.metrics.registry.getSingleMetric(name)!.get()).values.reduce((sum, { value }) => sum + value, 0));

describe(`a sink that may hold ${HELD} of ${INTEGRATIONS} integrations (APIGW_SINK_HELD_INTEGRATIONS)`, { timeout: 180_000 }, () => {
  let pipeline: Pipeline;
  let producer: Producer;
  let emitter: ChangeEmitter;

  before(async () => {
    pipeline = await env.open({ sink: true });
    ({ producer, emitter } = await openEmitter(env, PARTITIONS));
  });
  after(async () => {
    await producer?.disconnect();
    await pipeline?.close();
    await env.cleanup();
  });

  it('writes every version once, ignores old copies, and deletes what a snapshot no longer sees, reading back what it let go', async () => {
    await emitter.emit(changes(1));
    await emitter.emit(changes(2));
    // Copies of the creations, read before the updates: each is read back from the tables, and found older.
    await emitter.emit(changes(1));
    const snapshotId = 'held-closing';
    const startedAt = BASE_TIME + 10 * 60_000;
    await emitter.emit(changes(2).slice(VANISHED).map((change) => ({
      ...change, op: 'SNAPSHOT' as const, event_time: startedAt, observed_at: startedAt, source: snapshotSource(snapshotId), position: snapshotId,
    })));
    await emitter.completeSnapshot({
      account_id: ACCOUNT, region: REGION, observed_at: startedAt + 1_000, source: snapshotSource(snapshotId),
      snapshot: { snapshot_id: snapshotId, started_at: startedAt, api_ids: ['api0', 'api1', 'api2', 'api3'], integration_count: INTEGRATIONS - VANISHED },
    });
    await pipeline.sink!.waitForCatchUp();

    const versions = await rows<{ integration_id: string; operation: string; version: string; timeout: number | null; copies: string }>(pipeline,
      `SELECT integration_id, operation, version, JSONExtract(coalesce(after, '{}'), 'timeout_in_millis', 'Nullable(Int32)') AS timeout, count() AS copies
       FROM ${HISTORY} GROUP BY integration_id, operation, version, after ORDER BY integration_id, version`);
    assert.deepEqual(versions.filter((row) => Number(row.copies) !== 1), [], 'no version written twice');
    const expected = Array.from({ length: INTEGRATIONS }, (_, i) => [
      [integrationId(i), 'CREATE', '1', timeoutOf(1)], [integrationId(i), 'UPDATE', '2', timeoutOf(2)],
      ...(i < VANISHED ? [[integrationId(i), 'DELETE', '3', null]] : []),
    ]).flat();
    assert.deepEqual(versions.map((row) => [row.integration_id, row.operation, String(row.version), row.timeout]), expected);

    const live = await rows<{ integration_id: string; timeout_in_millis: number; version: string }>(pipeline,
      `SELECT integration_id, timeout_in_millis, version FROM ${CURRENT} FINAL WHERE is_deleted = 0 ORDER BY integration_id`);
    assert.deepEqual(live.map((row) => [row.integration_id, row.timeout_in_millis, String(row.version)]),
      Array.from({ length: INTEGRATIONS - VANISHED }, (_, k) => [integrationId(k + VANISHED), timeoutOf(2), '2']));

    // Deleted integrations are dropped once their deletion is written, and not counted as let go.
    const letGo = await metric('apigw_stream_sink_integrations_let_go_total');
    assert.ok(letGo >= INTEGRATIONS - VANISHED - HELD, `it let go of most of the inventory: ${letGo}`);
    const held = await metric('apigw_stream_sink_integrations_held');
    assert.ok(held <= HELD, `once its writes are done, it holds no more than its limit: ${held}`);
  });

  it('repairs a current row left behind its history when it reads the integration back', async () => {
    const at = BASE_TIME + 30 * 60_000;
    const arn = integrationArn(REGION, 'api0', 'int-repair');
    await emitter.emit([observed('int-repair', { event: at, read: at }, snapshotSource('held-repair'))]);
    await emitter.emit([observed('int-repair', { event: at + 1_000, read: at + 1_000 }, cloudTrailSource('repair-update'), 4_000)]);
    await pipeline.sink!.waitForCatchUp();
    // A write interrupted between history and current state: version 2 is in history only.
    await pipeline.clickhouse!.command({ query: `ALTER TABLE ${CURRENT} DELETE WHERE arn = {arn:String} AND version = 2 SETTINGS mutations_sync = 2`, query_params: { arn } });
    await emitter.emit(Array.from({ length: 4 * HELD }, (_, i) => observed(`int-fill-r${i}`, { event: at + 2_000, read: at + 2_000 }, snapshotSource('held-fill-r'))));
    await pipeline.sink!.waitForCatchUp();
    // Let go of, it is read back for this re-read: from history, and its current row written again. (Another
    // integration beside it makes its write another block than version 2's: the same block again would be dropped as
    // a retry, and a version 2 made again would not show.)
    await emitter.emit([
      observed('int-repair', { event: at + 3_000, read: at + 3_000 }, snapshotSource('held-repair-2'), 4_000),
      observed('int-repair-beside', { event: at + 3_000, read: at + 3_000 }, snapshotSource('held-repair-2')),
    ]);
    await pipeline.sink!.waitForCatchUp();

    const current = await rows<{ version: string; timeout_in_millis: number }>(pipeline,
      `SELECT version, timeout_in_millis FROM ${CURRENT} FINAL WHERE arn = {arn:String}`, { arn });
    assert.deepEqual(current.map((row) => [String(row.version), row.timeout_in_millis]), [['2', 4_000]]);
    const versions = await rows<{ version: string }>(pipeline, `SELECT version FROM ${HISTORY} WHERE arn = {arn:String} ORDER BY version`, { arn });
    assert.deepEqual(versions.map((row) => String(row.version)), ['1', '2'], 'the re-read made no version');
  });

  it('records who made a version a snapshot saw first once, though the sink let go of it in between', async () => {
    const snapshotAt = BASE_TIME + 20 * 60_000;
    const alice = `arn:aws:iam::${ACCOUNT}:user/alice`;
    const carol = `arn:aws:iam::${ACCOUNT}:user/carol`;
    const read = { event: snapshotAt, read: snapshotAt };
    await emitter.emit([observed('int-attr', read, snapshotSource('held-attr')), observed('int-attr-2', read, snapshotSource('held-attr'))]);
    // CloudTrail shows alice's call before the snapshot's read, late: her principal goes to the snapshot's version.
    await emitter.emit([observed('int-attr', { event: snapshotAt - 30_000, read: snapshotAt + 10_000 }, cloudTrailSource('attr-alice', alice))]);
    // Integrations made after it: the sink lets go of it, the one held longest.
    await emitter.emit(Array.from({ length: 4 * HELD }, (_, i) => observed(`int-fill-${i}`, { event: snapshotAt + 20_000, read: snapshotAt + 20_000 }, snapshotSource('held-fill'))));
    await pipeline.sink!.waitForCatchUp();
    // Another event before the snapshot's read that shows the same state: read back with the version, it names nobody.
    // (Carol's beside it makes its write another block than alice's: the same block again would be dropped as a retry.)
    await emitter.emit([
      observed('int-attr', { event: snapshotAt - 20_000, read: snapshotAt + 30_000 }, cloudTrailSource('attr-bob', `arn:aws:iam::${ACCOUNT}:user/bob`)),
      observed('int-attr-2', { event: snapshotAt - 20_000, read: snapshotAt + 30_000 }, cloudTrailSource('attr-carol', carol)),
    ]);
    await pipeline.sink!.waitForCatchUp();

    const principals = await rows<{ arn: string; version: string; principal_arn: string }>(pipeline,
      `SELECT arn, version, principal_arn FROM ${env.table('aws_apigatewayv2_api_integrations_attributions')} FINAL WHERE arn IN {arns:Array(String)} ORDER BY arn`,
      { arns: ['int-attr', 'int-attr-2'].map((id) => integrationArn(REGION, 'api0', id)) });
    assert.deepEqual(principals.map((row) => [row.arn.split('/').at(-1), String(row.version), row.principal_arn]), [['int-attr', '1', alice], ['int-attr-2', '1', carol]]);
  });
});
