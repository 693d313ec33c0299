import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Producer } from 'kafkajs';
import type { Pipeline } from '../../cli/pipeline.js';
import type { ChangeEmitter } from '../../services/shared/change-emitter.js';
import { mapIntegration, type ChangeSource } from '../../services/shared/integration-model.js';
import { openEmitter, rows, testEnvironment } from '../support/harness.js';

const ACCOUNT = '210987654321';
const REGIONS = ['sa-east-1', 'eu-south-1'];
const env = testEnvironment({ region: REGIONS.join(','), partitions: 1 });
const CURRENT = env.table('aws_apigatewayv2_api_integrations');
const HISTORY = env.table('aws_apigatewayv2_api_integrations_history');

const integrationIds = ['int-a', 'int-b', 'int-c'];
const source = (snapshotId: string): ChangeSource => ({
  type: 'SNAPSHOT', snapshot_id: snapshotId, cloudtrail_event_id: null, cloudtrail_event_name: null, principal_arn: null, source_ip: null, user_agent: null,
});

/** The events of a snapshot of both regions under one id, without its markers; returns when it started. */
async function readAll(emitter: ChangeEmitter, snapshotId: string, missing: { region: string; integrationId: string }[] = []): Promise<number> {
  const startedAt = Date.now();
  for (const region of REGIONS) {
    const present = integrationIds.filter((id) => !missing.some((gone) => gone.region === region && gone.integrationId === id));
    await emitter.emit(present.map((integrationId) => ({
      account_id: ACCOUNT, region, api_id: 'api1', integration_id: integrationId, op: 'SNAPSHOT' as const,
      event_time: Date.now(), observed_at: Date.now(), source: source(snapshotId), position: snapshotId,
      api: { name: 'markers', protocol_type: 'HTTP', api_endpoint: null },
      after: mapIntegration(region, 'api1', { IntegrationId: integrationId, IntegrationType: 'HTTP_PROXY', IntegrationUri: `https://${integrationId}.example.com` }),
    })));
  }
  return startedAt;
}

/** Each region's completion marker, the first region's first. */
async function markComplete(emitter: ChangeEmitter, snapshotId: string, startedAt: number): Promise<void> {
  for (const region of REGIONS) {
    await emitter.completeSnapshot({
      account_id: ACCOUNT, region, observed_at: Date.now(), source: source(snapshotId),
      snapshot: { snapshot_id: snapshotId, started_at: startedAt, api_ids: ['api1'], integration_count: integrationIds.length },
    });
  }
}

/**
 * A whole snapshot in the order that once deleted live integrations: every event of both regions first, then the
 * first region's marker, then the second's, all in one partition.
 */
async function snapshot(emitter: ChangeEmitter, snapshotId: string, missing: { region: string; integrationId: string }[] = []): Promise<void> {
  await markComplete(emitter, snapshotId, await readAll(emitter, snapshotId, missing));
}

const keysWithout = (...gone: string[]) => REGIONS.flatMap((region) => integrationIds.map((id) => `${region}/${id}`)).filter((key) => !gone.includes(key)).sort();

describe('completion markers: two regions under one snapshot id, and snapshots that never mark their end', { timeout: 120_000 }, () => {
  let pipeline: Pipeline;
  let producer: Producer;
  let emitter: ChangeEmitter;
  const deleted = async () => (await rows<{ region: string; integration_id: string }>(pipeline,
    `SELECT region, integration_id FROM ${HISTORY} WHERE operation = 'DELETE' ORDER BY region, integration_id, version`))
    .map((row) => `${row.region}/${row.integration_id}`);
  const live = async () => (await rows<{ region: string; integration_id: string }>(pipeline,
    `SELECT region, integration_id FROM ${CURRENT} FINAL WHERE is_deleted = 0 ORDER BY region, integration_id`))
    .map((row) => `${row.region}/${row.integration_id}`);

  before(async () => {
    pipeline = await env.open({ sink: true });
    ({ producer, emitter } = await openEmitter(env, 1));
    await snapshot(emitter, 'markers-1');
    await pipeline.sink!.waitForCatchUp();
  });
  after(async () => {
    await producer?.disconnect();
    await pipeline?.close();
    await env.cleanup();
  });

  it('the first region\'s marker does not take the second region\'s seen integrations with it', async () => {
    await snapshot(emitter, 'markers-2');
    await pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await live(), keysWithout());
    assert.deepEqual(await deleted(), []);
  });

  it('each region\'s marker deletes exactly what that region\'s read did not see', async () => {
    await snapshot(emitter, 'markers-3', [{ region: REGIONS[1]!, integrationId: 'int-b' }]);
    await pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await live(), keysWithout(`${REGIONS[1]}/int-b`));
    assert.deepEqual(await deleted(), [`${REGIONS[1]}/int-b`]);
  });

  // From here on B/int-b is gone from the inventory.
  const gone = { region: REGIONS[1]!, integrationId: 'int-b' };

  it('a snapshot that dies before its marker is abandoned when the next begins, whose marker deletes what it did not see', async () => {
    await readAll(emitter, 'died-1', [gone]);
    await snapshot(emitter, 'after-died-1', [gone, { region: REGIONS[0]!, integrationId: 'int-c' }]);
    await pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await live(), keysWithout(`${REGIONS[1]}/int-b`, `${REGIONS[0]}/int-c`));
    assert.deepEqual(await deleted(), [`${REGIONS[0]}/int-c`, `${REGIONS[1]}/int-b`].sort());
  });

  it('the marker of an abandoned snapshot, should it come after all, deletes nothing', async () => {
    const late = await readAll(emitter, 'late-1', [gone, { region: REGIONS[0]!, integrationId: 'int-a' }]);
    const newer = await readAll(emitter, 'after-late-1', [gone]);
    await markComplete(emitter, 'late-1', late);
    await markComplete(emitter, 'after-late-1', newer);
    await pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await live(), keysWithout(`${REGIONS[1]}/int-b`));
    assert.deepEqual(await deleted(), [`${REGIONS[0]}/int-c`, `${REGIONS[1]}/int-b`].sort(), 'no deletion since the last test');
  });
});

