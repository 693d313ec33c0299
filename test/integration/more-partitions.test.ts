import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeleteIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import type { Pipeline } from '../../cli/pipeline.js';
import { withAdmin } from '../../services/shared/kafka.js';
import { resetEmulator, seedSampleInventory } from '../../stack/sample-inventory.js';
import { emulatorInventory } from '../support/emulator-state.js';
import { awsClient, motoEndpoint, plainKafka, rows, testEnvironment, waitFor } from '../support/harness.js';

const REGION = 'eu-west-2';
const aws = awsClient(REGION);
const logLines: string[] = [];
const env = testEnvironment({ region: REGION, partitions: 2, logLines });
const CURRENT = env.table('aws_apigatewayv2_api_integrations');
const HISTORY = env.table('aws_apigatewayv2_api_integrations_history');

/** Each live integration's partition, as the current-state table records it. */
async function partitions(pipeline: Pipeline): Promise<Map<string, number>> {
  const live = await rows<{ arn: string; kafka_partition: number }>(pipeline, `SELECT arn, kafka_partition FROM ${CURRENT} FINAL WHERE is_deleted = 0`);
  return new Map(live.map((row) => [row.arn, row.kafka_partition]));
}

async function snapshot(pipeline: Pipeline): Promise<void> {
  const result = await pipeline.snapshotter!.runOnce();
  assert.ok(result.regions.every((region) => region.completed));
  await pipeline.sink!.waitForCatchUp();
}

describe('the topic gains partitions: keys move, and markers delete only what vanished', { timeout: 240_000 }, () => {
  let pipeline: Pipeline | undefined;
  let before2: Map<string, number>;
  before(async () => {
    await resetEmulator(motoEndpoint);
    await seedSampleInventory(aws, { httpApis: 6, websocketApis: 4, prefix: 'grow' });
    pipeline = await env.open({ snapshot: true, sink: true });
    await snapshot(pipeline);
    before2 = await partitions(pipeline);
    await withAdmin(plainKafka(), (admin) => admin.createPartitions({ topicPartitions: [{ topic: env.config.topic, count: 6 }] }));
    // The running snapshotter notices (its topic check, every 10 s), and says its markers miss the new partitions.
    await waitFor('the warning', async () => logLines.some((line) => line.includes('the topic has more partitions than when this process started')));
    await pipeline.close();
    // New producers and a new sink, which see 6 partitions: most keys now hash to another one.
    pipeline = await env.open({ snapshot: true, sink: true });
  });
  after(async () => {
    await pipeline?.close();
    aws.destroy();
    await env.cleanup();
  });

  it('snapshots after it delete nothing that still exists, and the table follows the keys to their partitions', async () => {
    // The sink's first read of each partition after it started is not one it saw from its start: the second counts.
    await snapshot(pipeline!);
    await snapshot(pipeline!);
    const deletes = await rows(pipeline!, `SELECT arn FROM ${HISTORY} WHERE operation = 'DELETE'`);
    assert.deepEqual(deletes, [], 'no integration deleted');
    const now = await partitions(pipeline!);
    assert.deepEqual([...now.keys()].sort(), [...(await emulatorInventory(aws, REGION)).keys()].sort());
    assert.ok([...now].some(([arn, partition]) => partition !== before2.get(arn) && partition >= 2), 'some keys moved to the new partitions');
    // Idempotent: another snapshot changes neither.
    const historyRows = (await rows(pipeline!, `SELECT 1 FROM ${HISTORY}`)).length;
    await snapshot(pipeline!);
    assert.equal((await rows(pipeline!, `SELECT 1 FROM ${HISTORY}`)).length, historyRows);
  });

  it('an integration that moved and then vanished is deleted by its new partition\'s marker', async () => {
    const moved = [...await partitions(pipeline!)].find(([arn, partition]) => partition !== before2.get(arn))![0];
    const [, apiId, integrationId] = /\/apis\/([^/]+)\/integrations\/([^/]+)$/.exec(moved)!;
    await aws.send(new DeleteIntegrationCommand({ ApiId: apiId, IntegrationId: integrationId }));
    await snapshot(pipeline!);
    const deletes = await rows<{ arn: string }>(pipeline!, `SELECT arn FROM ${HISTORY} WHERE operation = 'DELETE'`);
    assert.deepEqual(deletes.map((row) => row.arn), [moved]);
    assert.deepEqual([...(await partitions(pipeline!)).keys()].sort(), [...(await emulatorInventory(aws, REGION)).keys()].sort());
  });
});
