import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeleteApiCommand, DeleteIntegrationCommand, GetIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { Pipeline } from '../../cli/pipeline.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { columnsOf, emulatorInventory, expectedColumns } from '../support/emulator-state.js';
import { awsClient, motoEndpoint, plainKafka, registryUrl, rows, testEnvironment, topicMessages, type TopicMessage } from '../support/harness.js';

const REGION = 'eu-west-1';
const aws = awsClient(REGION);
const env = testEnvironment({ region: REGION, partitions: 3 });
const CURRENT = env.table('aws_apigatewayv2_api_integrations');
const HISTORY = env.table('aws_apigatewayv2_api_integrations_history');
const APIS = env.table('aws_apigatewayv2_apis');

let pipeline: Pipeline;
let apis: SampleApi[];

type Row = Record<string, unknown>;

/** A current-state row's columns, maps parsed from their canonical JSON. */
function actualColumns(row: Row): Row {
  const parse = (value: unknown) => (value === null ? null : JSON.parse(String(value)));
  return columnsOf({
    ...row,
    request_parameters: parse(row.request_parameters),
    request_templates: parse(row.request_templates),
    response_parameters: parse(row.response_parameters),
  });
}

/** What the emulator holds now, as integration ARNs. */
async function emulatorArns(): Promise<string[]> {
  return [...(await emulatorInventory(aws, REGION)).keys()].sort();
}

async function liveArns(): Promise<string[]> {
  return (await rows<{ arn: string }>(pipeline, `SELECT arn FROM ${CURRENT} FINAL WHERE is_deleted = 0 ORDER BY arn`)).map((r) => r.arn);
}

/** Integrations whose state the sink holds in memory (its gauge). */
const held = async () => (await env.metrics.sinkIntegrationsHeld.get()).values[0]?.value;

/** Messages the sink counted as changing nothing. */
const unchangedCount = async () => (await env.metrics.sinkMessages.get()).values.find((v) => v.labels.outcome === 'unchanged')?.value ?? 0;

async function snapshot(): Promise<void> {
  const result = await pipeline.snapshotter!.runOnce();
  assert.ok(result.regions.every((region) => region.completed), 'every region read completely');
  await pipeline.sink!.waitForCatchUp();
}

describe('snapshot path: emulator -> snapshotter -> Kafka -> sink -> ClickHouse', { timeout: 300_000 }, () => {
  before(async () => {
    await resetEmulator(motoEndpoint);
    apis = await seedSampleInventory(aws, { httpApis: 12, websocketApis: 10, prefix: 'fidelity' });
    pipeline = await env.open({ snapshot: true, sink: true });
    await snapshot();
  });

  after(async () => {
    await pipeline?.close();
    aws.destroy();
    await env.cleanup();
  });

  it('stores every column of every integration exactly as GetIntegration returns it', async () => {
    const table = await rows(pipeline, `SELECT * FROM ${CURRENT} FINAL WHERE is_deleted = 0 ORDER BY arn`);
    const integrationCount = apis.reduce((n, api) => n + api.integrationIds.length, 0);
    assert.ok(apis.length >= 20, 'at least 20 APIs');
    assert.equal(table.length, integrationCount);
    const apiUuids = new Map((await rows<{ api_id: string; aws_api_id: string }>(pipeline, `SELECT api_id, aws_api_id FROM ${APIS} FINAL`)).map((r) => [r.aws_api_id, r.api_id]));
    for (const row of table) {
      const live = await aws.send(new GetIntegrationCommand({ ApiId: String(row.aws_api_id), IntegrationId: String(row.integration_id) }));
      assert.deepEqual(actualColumns(row), expectedColumns(live), `columns of ${row.arn}`);
      assert.equal(row.api_id, apiUuids.get(String(row.aws_api_id)), 'api_id resolves in aws_apigatewayv2_apis');
      assert.match(String(row.api_id), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'api_id is a UUID v5');
    }
    // The fixture covers every kind the columns describe.
    const has = (predicate: (row: Row) => boolean, what: string) => assert.ok(table.some(predicate), what);
    has((r) => r.integration_type === 'AWS_PROXY' && r.payload_format_version === '2.0', 'Lambda proxy, payload 2.0');
    has((r) => r.integration_type === 'AWS_PROXY' && r.integration_subtype !== null && r.request_parameters !== null, 'AWS service integration with subtype');
    has((r) => r.integration_type === 'HTTP_PROXY' && String(r.response_parameters).includes('"404":{'), 'nested response parameter maps');
    has((r) => r.connection_type === 'VPC_LINK' && r.tls_config_server_name_to_verify !== null, 'private integration with TLS server name');
    for (const type of ['AWS', 'HTTP', 'MOCK']) has((r) => r.integration_type === type && r.request_templates !== null && r.passthrough_behavior !== null, `WebSocket ${type}`);
    has((r) => r.content_handling_strategy !== null && r.template_selection_expression !== null, 'content handling and template selection');
    has((r) => r.description === '', 'an empty description');
    has((r) => r.description === null, 'an absent description');
  });

  it('adds no history row for a second snapshot of an unchanged inventory', async () => {
    const before = await rows(pipeline, `SELECT * FROM ${HISTORY} ORDER BY arn, version`);
    const currentBefore = await rows(pipeline, `SELECT arn, content_hash, is_deleted FROM ${CURRENT} FINAL ORDER BY arn`);
    await snapshot();
    assert.deepEqual(await rows(pipeline, `SELECT * FROM ${HISTORY} ORDER BY arn, version`), before);
    assert.deepEqual(await rows(pipeline, `SELECT arn, content_hash, is_deleted FROM ${CURRENT} FINAL ORDER BY arn`), currentBefore);
  });

  it('changes neither table when every message is delivered again', async () => {
    const history = await rows(pipeline, `SELECT * FROM ${HISTORY} ORDER BY arn, version`);
    const current = await rows(pipeline, `SELECT * FROM ${CURRENT} FINAL ORDER BY arn`);
    const apisBefore = await rows(pipeline, `SELECT * FROM ${APIS} FINAL ORDER BY api_id`);
    await pipeline.close();
    const admin = plainKafka().admin();
    await admin.connect();
    await admin.resetOffsets({ groupId: env.config.sinkGroupId, topic: env.config.topic, earliest: true });
    await admin.disconnect();
    pipeline = await env.open({ snapshot: true, sink: true });
    await pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await rows(pipeline, `SELECT * FROM ${HISTORY} ORDER BY arn, version`), history);
    assert.deepEqual(await rows(pipeline, `SELECT * FROM ${CURRENT} FINAL ORDER BY arn`), current);
    assert.deepEqual(await rows(pipeline, `SELECT * FROM ${APIS} FINAL ORDER BY api_id`), apisBefore);
  });

  it('deletes an integration and every integration of a deleted API, with a DELETE row each in history', async () => {
    const withMany = apis.find((api) => api.integrationIds.length >= 2)!;
    const goneIntegration = withMany.integrationIds[0]!;
    const goneApi = apis.find((api) => api !== withMany && api.integrationIds.length >= 2)!;
    await aws.send(new DeleteIntegrationCommand({ ApiId: withMany.apiId, IntegrationId: goneIntegration }));
    await aws.send(new DeleteApiCommand({ ApiId: goneApi.apiId }));
    await snapshot();

    assert.deepEqual(await liveArns(), await emulatorArns());
    const deletes = await rows<{ aws_api_id: string; integration_id: string }>(pipeline,
      `SELECT aws_api_id, integration_id FROM ${HISTORY} WHERE operation = 'DELETE' ORDER BY aws_api_id, integration_id`);
    const expected = [
      { aws_api_id: withMany.apiId, integration_id: goneIntegration },
      ...goneApi.integrationIds.map((id) => ({ aws_api_id: goneApi.apiId, integration_id: id })),
    ].sort((a, b) => `${a.aws_api_id}/${a.integration_id}`.localeCompare(`${b.aws_api_id}/${b.integration_id}`));
    assert.deepEqual(deletes, expected);
    const partitions = await rows<{ p: number }>(pipeline, `SELECT DISTINCT kafka_partition AS p FROM ${CURRENT} FINAL`);
    assert.equal(partitions.length, 3, 'the integrations are spread over all 3 partitions');
    const [api] = await rows<{ is_deleted: number }>(pipeline, `SELECT is_deleted FROM ${APIS} WHERE aws_api_id = {id:String} ORDER BY version DESC LIMIT 1`, { id: goneApi.apiId });
    assert.equal(api?.is_deleted, 1, 'the deleted API is marked deleted');
  });

  it('writes messages any Confluent-compatible consumer decodes, key and value', async () => {
    const registry = new SchemaRegistry({ host: registryUrl });
    const ops = new Map<string, number>();
    for (const message of await topicMessages(env.config.topic)) {
      const key = await registry.decode(message.key);
      const value = await registry.decode(message.value);
      assert.equal(message.value[0], 0, 'Confluent magic byte');
      assert.equal(key.integration_id, value.integration_id);
      assert.equal(key.api_id, value.api_id);
      ops.set(value.op, (ops.get(value.op) ?? 0) + 1);
    }
    assert.ok((ops.get('SNAPSHOT') ?? 0) > 0);
    assert.equal(ops.get('SNAPSHOT_COMPLETE'), 3 * 3, 'one completion marker per partition per snapshot');
  });

  it('lets go of deleted integrations once their deletion is written; their old events delivered again change nothing', async () => {
    const deleted = new Set((await rows<{ arn: string }>(pipeline, `SELECT DISTINCT arn FROM ${HISTORY} WHERE operation = 'DELETE'`)).map((r) => r.arn));
    assert.ok(deleted.size >= 2, 'the test before deleted integrations');
    // The next snapshot gives every partition a batch, which drops the deleted states its partition's writes wrote.
    await snapshot();
    assert.equal(await held(), (await liveArns()).length, 'the sink holds the live integrations, not the deleted ones');

    // Copies of the deleted integrations' snapshot events, produced again: the sink must find their deletion in the tables.
    const history = await rows(pipeline, `SELECT * FROM ${HISTORY} ORDER BY arn, version`);
    const current = await rows(pipeline, `SELECT * FROM ${CURRENT} FINAL ORDER BY arn`);
    const registry = new SchemaRegistry({ host: registryUrl });
    const copies: TopicMessage[] = [];
    for (const message of await topicMessages(env.config.topic)) {
      const value = await registry.decode(message.value);
      if (value.op === 'SNAPSHOT' && deleted.has(value.arn)) copies.push(message);
    }
    assert.ok(copies.length >= deleted.size, 'every deleted integration was read by a snapshot before');
    const unchangedBefore = await unchangedCount();
    const producer = plainKafka().producer();
    await producer.connect();
    await producer.send({ topic: env.config.topic, messages: copies.map(({ partition, key, value }) => ({ partition, key, value })) });
    await producer.disconnect();
    await pipeline.sink!.waitForCatchUp();

    assert.deepEqual(await rows(pipeline, `SELECT * FROM ${HISTORY} ORDER BY arn, version`), history);
    assert.deepEqual(await rows(pipeline, `SELECT * FROM ${CURRENT} FINAL ORDER BY arn`), current);
    assert.equal(await unchangedCount() - unchangedBefore, copies.length, 'every copy counted as changing nothing');
    await snapshot();
    assert.equal(await held(), (await liveArns()).length, 'the deletions read back are let go again');
  });
});
