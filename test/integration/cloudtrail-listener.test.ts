import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { CreateApiCommand, CreateIntegrationCommand, GetIntegrationCommand, GetIntegrationsCommand } from '@aws-sdk/client-apigatewayv2';
import type { Counter } from 'prom-client';
import type { Pipeline } from '../../cli/pipeline.js';
import { createDriftQueries } from '../../services/query/drift-queries.js';
import { withAdmin } from '../../services/shared/kafka.js';
import { PROJECT_ROOT } from '../../stack/layout.js';
import { resetEmulator } from '../../stack/sample-inventory.js';
import { startCloudTrailServer, type CloudTrailServer } from '../support/cloudtrail-server.js';
import { emulatorInventory } from '../support/emulator-state.js';
import { awsClient, motoEndpoint, plainKafka, produce, rows, runListener, testEnvironment, waitFor } from '../support/harness.js';
import { PRINCIPALS, createRecordingClient, openApiWith } from '../support/recorded-changes.js';

const REGION = 'us-west-2';
const OTHER_REGION = 'eu-north-1';
const aws = awsClient(REGION);
const otherAws = awsClient(OTHER_REGION);
let trail: CloudTrailServer;
let pipeline: Pipeline;
let env: ReturnType<typeof testEnvironment>;
let changes: ReturnType<typeof createRecordingClient>;
let listener: ReturnType<typeof runListener>;

interface HistoryRow {
  arn: string;
  integration_id: string;
  operation: string;
  cloudtrail_event_id: string | null;
  cloudtrail_event_name: string | null;
  principal_arn: string | null;
  source_ip: string | null;
}

/** The history rows one CloudTrail event made, with the columns asked for. */
const historyOf = <T>(eventId: string, columns: string) => rows<T>(pipeline,
  `SELECT ${columns} FROM ${env.table('aws_apigatewayv2_api_integrations_history')} WHERE cloudtrail_event_id = {id:String} ORDER BY arn`, { id: eventId });

const history = (eventId: string) => historyOf<HistoryRow>(eventId,
  'arn, integration_id, operation, cloudtrail_event_id, cloudtrail_event_name, principal_arn, source_ip');

const applied = (eventId: string, count = 1) => waitFor(`history rows of event ${eventId}`, async () => {
  const found = await history(eventId);
  return found.length >= count ? found : undefined;
});

async function emulatorState(): Promise<Map<string, number | null>> {
  const inventory = await emulatorInventory(aws, REGION);
  return new Map([...inventory].map(([arn, columns]) => [arn, columns.timeout_in_millis as number | null]));
}

async function tableState(): Promise<Map<string, number | null>> {
  const live = await rows<{ arn: string; timeout_in_millis: number | null }>(pipeline,
    `SELECT arn, timeout_in_millis FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE is_deleted = 0 AND region = {region:String}`, { region: REGION });
  return new Map(live.map((row) => [row.arn, row.timeout_in_millis]));
}

let lastDifference = '';
const converged = () => waitFor('the current-state table to equal the emulator', async () => {
  const [expected, actual] = await Promise.all([emulatorState(), tableState()]);
  const differing = [...new Set([...expected.keys(), ...actual.keys()])].filter((arn) => expected.get(arn) !== actual.get(arn));
  lastDifference = differing.map((arn) => `${arn}: emulator ${expected.get(arn)}, table ${actual.get(arn)}`).join('; ');
  return differing.length === 0;
}).catch((error: Error) => {
  throw new Error(`${error.message}; still different: ${lastDifference}`);
});

async function topicEnd(): Promise<number> {
  const admin = plainKafka().admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(env.config.topic);
  await admin.disconnect();
  return offsets.reduce((n, p) => n + Number(p.high), 0);
}

/** A counter's total over the series with these labels (among others). */
async function counted(counter: Counter, labels: Record<string, string>): Promise<number> {
  const { values } = await counter.get();
  return values.filter((v) => Object.entries(labels).every(([name, value]) => v.labels[name] === value)).reduce((n, v) => n + v.value, 0);
}

const pollFailures = () => counted(env.metrics.listenerPollFailures, { region: OTHER_REGION });
const eventsCounted = (outcome: string) => counted(env.metrics.cloudtrailEvents, { region: REGION, outcome });

async function newApi(name: string): Promise<string> {
  return (await aws.send(new CreateApiCommand({ Name: name, ProtocolType: 'HTTP' }))).ApiId!;
}

describe('CloudTrail listener: every change once, with who made it', { timeout: 300_000 }, () => {
  before(async () => {
    await resetEmulator(motoEndpoint);
    trail = await startCloudTrailServer();
    env = testEnvironment({ region: `${REGION},${OTHER_REGION}`, partitions: 3, extra: {
      AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint,
      APIGW_LISTENER_POLL_SECONDS: '0.3',
      APIGW_LISTENER_SWEEP_SECONDS: '2', // late events (out of order) are read by sweeps
      APIGW_LISTENER_LOOKBACK_HOURS: '1',
      APIGW_LISTENER_CALLS_PER_SECOND: '2',
    } });
    changes = createRecordingClient({ aws, trail, region: REGION });
    pipeline = await env.open({ snapshot: true, listen: true, sink: true });
    listener = runListener(pipeline);
  });

  after(async () => {
    await listener?.stop();
    await pipeline?.close();
    await trail?.close();
    aws.destroy();
    otherAws.destroy();
    await env?.cleanup();
  });

  it('follows creates, updates, deletes, API deletion and reimport, with one history row per change and its principal', async () => {
    const apiId = await newApi('orders');
    const created = await changes.createIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://a.example.com', PayloadFormatVersion: '1.0' });
    const second = await changes.createIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationType: 'AWS_PROXY', IntegrationUri: 'arn:aws:lambda:us-west-2:123456789012:function:f', PayloadFormatVersion: '2.0' });
    const [createRow] = await applied(created.eventId);
    await applied(second.eventId);
    assert.equal(createRow!.operation, 'CREATE');
    assert.equal(createRow!.principal_arn, PRINCIPALS.alice.arn);
    assert.equal(createRow!.source_ip, PRINCIPALS.alice.sourceIp);
    assert.equal(createRow!.cloudtrail_event_name, 'CreateIntegration');

    const update = await changes.updateIntegration(PRINCIPALS.bob, { ApiId: apiId, IntegrationId: created.integrationId, TimeoutInMillis: 1500 });
    const [updateRow] = await applied(update);
    assert.deepEqual([updateRow!.operation, updateRow!.principal_arn], ['UPDATE', PRINCIPALS.bob.arn]);

    const deletion = await changes.deleteIntegration(PRINCIPALS.ci, apiId, second.integrationId);
    const [deleteRow] = await applied(deletion);
    assert.deepEqual([deleteRow!.operation, deleteRow!.integration_id, deleteRow!.principal_arn], ['DELETE', second.integrationId, PRINCIPALS.ci.arn]);
    await converged();

    const imported = await changes.importApi(PRINCIPALS.alice, 'imported', openApiWith({ '/a': 'https://a.example.com', '/b': 'https://b.example.com' }));
    const importRows = await applied(imported.eventId, 2);
    assert.deepEqual(importRows.map((r) => [r.operation, r.principal_arn]), [['CREATE', PRINCIPALS.alice.arn], ['CREATE', PRINCIPALS.alice.arn]]);

    // Reimport replaces every integration of the API: the old ones vanish, new ones appear.
    const reimport = await changes.reimportApi(PRINCIPALS.bob, imported.apiId, openApiWith({ '/c': 'https://c.example.com' }));
    const reimportRows = await applied(reimport, 3);
    assert.deepEqual(reimportRows.map((r) => r.operation).sort(), ['CREATE', 'DELETE', 'DELETE']);
    assert.ok(reimportRows.every((r) => r.principal_arn === PRINCIPALS.bob.arn));

    const apiDeletion = await changes.deleteApi(PRINCIPALS.ci, apiId);
    const apiDeleteRows = await applied(apiDeletion);
    assert.deepEqual(apiDeleteRows.map((r) => [r.operation, r.integration_id]), [['DELETE', created.integrationId]]);
    await converged();
  });

  it('reads the API for a create whose answer CloudTrail left out (above 100 KB), and records who made it', async () => {
    const apiId = await newApi('unanswered');
    const input = { ApiId: apiId, IntegrationType: 'HTTP_PROXY' as const, IntegrationMethod: 'GET', IntegrationUri: 'https://big.example.com', PayloadFormatVersion: '1.0' };
    const { integrationId, eventId } = await changes.createIntegration(PRINCIPALS.alice, input, { responseElements: null });
    const [row] = await applied(eventId);
    assert.deepEqual([row!.operation, row!.integration_id, row!.principal_arn], ['CREATE', integrationId, PRINCIPALS.alice.arn]);
    await converged();
  });

  it('reads the API for an update that names no integration, and counts the followed events it cannot read', async () => {
    const apiId = await newApi('unnamed');
    const { integrationId } = await changes.createIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://unnamed.example.com', PayloadFormatVersion: '1.0' });
    await converged();
    const unreadableBefore = await eventsCounted('unreadable');
    changes.record({ eventName: 'ImportApi', principal: PRINCIPALS.bob, requestParameters: { body: '...' }, responseElements: null });
    changes.record({ eventName: 'DeleteIntegration', principal: PRINCIPALS.bob, requestParameters: { integrationId }, responseElements: null });
    const unnamed = await changes.updateIntegration(PRINCIPALS.bob, { ApiId: apiId, IntegrationId: integrationId, TimeoutInMillis: 2500 },
      { requestParameters: { apiId, timeoutInMillis: 2500 }, responseElements: null });
    const [row] = await applied(unnamed);
    assert.deepEqual([row!.operation, row!.integration_id, row!.principal_arn], ['UPDATE', integrationId, PRINCIPALS.bob.arn]);
    assert.equal(await eventsCounted('unreadable') - unreadableBefore, 2, 'the import without its answer and the deletion without its API');
    await converged();
  });

  it('applies a late event once, and the same event id served twice once', async () => {
    const apiId = await newApi('late');
    const { integrationId } = await changes.createIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://late.example.com', PayloadFormatVersion: '1.0' });
    await converged();
    // Happened two minutes ago, visible only now: before the listener's last checkpoint, inside the overlap.
    const late = await changes.updateIntegration(PRINCIPALS.bob, { ApiId: apiId, IntegrationId: integrationId, TimeoutInMillis: 777 }, {
      eventTime: new Date(Date.now() - 120_000), visibleAt: Date.now() + 1500,
    });
    await applied(late);
    await converged();
    // CloudTrail serves the same event again (same id), a little later.
    changes.record({ eventName: 'UpdateIntegration', principal: PRINCIPALS.bob, requestParameters: { apiId, integrationId, timeoutInMillis: 777 }, responseElements: null, eventId: late, visibleAt: Date.now() + 500 });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal((await history(late)).length, 1);
  });

  it('records every change of one poll with its own principal, a reverted change included', async () => {
    const apiId = await newApi('reverted');
    const original = 'https://orders.internal.example.com';
    const { integrationId, eventId: created } = await changes.createIntegration(PRINCIPALS.ci, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: original, PayloadFormatVersion: '1.0' });
    await applied(created);
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the changes below fall in a later second than the create's read
    // Both become visible together, so one poll reads them: the re-read after them shows the original again.
    const visibleAt = Date.now() + 1000;
    const redirect = await changes.updateIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationId: integrationId, IntegrationUri: 'https://collector.attacker.example.net' }, { visibleAt });
    const revert = await changes.updateIntegration(PRINCIPALS.bob, { ApiId: apiId, IntegrationId: integrationId, IntegrationUri: original }, { visibleAt });
    const uriOf = (eventId: string) => historyOf<{ principal_arn: string; operation: string; uri: string }>(eventId,
      "principal_arn, operation, JSONExtractString(after, 'integration_uri') AS uri");
    await applied(revert);
    assert.deepEqual(await uriOf(redirect), [{ principal_arn: PRINCIPALS.alice.arn, operation: 'UPDATE', uri: 'https://collector.attacker.example.net' }]);
    assert.deepEqual(await uriOf(revert), [{ principal_arn: PRINCIPALS.bob.arn, operation: 'UPDATE', uri: original }]);
    await converged();
  });

  it('keeps a change made in the same second as the listener read the integration before it', async () => {
    const apiId = await newApi('same-second');
    const original = 'https://same-second.example.com';
    const { integrationId, eventId: created } = await changes.createIntegration(PRINCIPALS.ci, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: original, PayloadFormatVersion: '1.0' });
    await applied(created);
    const [read] = await rows<{ observed: string }>(pipeline,
      `SELECT toUnixTimestamp64Milli(observed_at) AS observed FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE integration_id = {id:String}`, { id: integrationId });
    // CloudTrail keeps whole seconds: changes made later in the second of that read carry its start as their time.
    const eventTime = new Date(Math.floor(Number(read!.observed) / 1000) * 1000);
    const visibleAt = Date.now() + 1000;
    const redirect = await changes.updateIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationId: integrationId, IntegrationUri: 'https://collector.attacker.example.net' }, { eventTime, visibleAt });
    const revert = await changes.updateIntegration(PRINCIPALS.bob, { ApiId: apiId, IntegrationId: integrationId, IntegrationUri: original }, { eventTime, visibleAt });
    const [redirectRow] = await applied(redirect);
    const [revertRow] = await applied(revert);
    assert.deepEqual([redirectRow!.principal_arn, revertRow!.principal_arn], [PRINCIPALS.alice.arn, PRINCIPALS.bob.arn]);
    await converged();
  });

  it('credits a change to its own principal when CloudTrail shows a later change late', async () => {
    const apiId = await newApi('credited');
    const { integrationId, eventId: created } = await changes.createIntegration(PRINCIPALS.ci, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://credited.example.com', PayloadFormatVersion: '1.0' });
    await applied(created);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // Bob changes it right after Alice, but CloudTrail shows his event seconds after hers: the listener re-reads
    // after Alice's event and finds Bob's change already made.
    const first = await changes.updateIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationId: integrationId, TimeoutInMillis: 5000 }, { visibleAt: Date.now() + 500 });
    const second = await changes.updateIntegration(PRINCIPALS.bob, { ApiId: apiId, IntegrationId: integrationId, TimeoutInMillis: 9000 }, { visibleAt: Date.now() + 4000 });
    const timeoutOf = (eventId: string) => historyOf<{ principal_arn: string; timeout: number }>(eventId,
      "principal_arn, JSONExtractInt(after, 'timeout_in_millis') AS timeout");
    await applied(first);
    await applied(second);
    assert.deepEqual(await timeoutOf(first), [{ principal_arn: PRINCIPALS.alice.arn, timeout: 5000 }]);
    assert.deepEqual(await timeoutOf(second), [{ principal_arn: PRINCIPALS.bob.arn, timeout: 9000 }]);
    await converged();
  });

  it('names who made the changes a snapshot read before CloudTrail showed their events, a deletion included', async () => {
    const apiId = await newApi('seen-first');
    const target = { ApiId: apiId, IntegrationType: 'HTTP_PROXY' as const, IntegrationMethod: 'GET', PayloadFormatVersion: '1.0' };
    const kept = await changes.createIntegration(PRINCIPALS.ci, { ...target, IntegrationUri: 'https://kept.example.com' });
    const removed = await changes.createIntegration(PRINCIPALS.ci, { ...target, IntegrationUri: 'https://removed.example.com' });
    await applied(kept.eventId);
    await applied(removed.eventId);
    // The listener's reads of the creates count as made at the end of their events' second: the snapshot reads later.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // CloudTrail shows these minutes late; a snapshot reads them first and makes versions that name no principal.
    const visibleAt = Date.now() + 5000;
    const update = await changes.updateIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationId: kept.integrationId, TimeoutInMillis: 4321 }, { visibleAt });
    const deletion = await changes.deleteIntegration(PRINCIPALS.bob, apiId, removed.integrationId, { visibleAt });
    // The snapshot reads them in a later second than their events': the view dates each change by its event.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await pipeline.snapshotter!.runOnce();
    const versions = () => rows<{ integration_id: string; operation: string; source_type: string; principal_arn: string | null; cloudtrail_event_id: string | null }>(pipeline,
      `SELECT integration_id, operation, source_type, principal_arn, cloudtrail_event_id
         FROM ${env.table('aws_apigatewayv2_api_integrations_history_attributed')} WHERE aws_api_id = {api:String} AND version = 2 ORDER BY operation`, { api: apiId });
    const named = await waitFor('the late events to name who made the versions the snapshot wrote', async () => {
      const found = await versions();
      return found.length === 2 && found.every((row) => row.principal_arn !== null) ? found : undefined;
    });
    assert.deepEqual(named, [
      { integration_id: removed.integrationId, operation: 'DELETE', source_type: 'SNAPSHOT', principal_arn: PRINCIPALS.bob.arn, cloudtrail_event_id: deletion },
      { integration_id: kept.integrationId, operation: 'UPDATE', source_type: 'SNAPSHOT', principal_arn: PRINCIPALS.alice.arn, cloudtrail_event_id: update },
    ]);
    const [{ rows: historyRows }] = await rows<{ rows: string }>(pipeline,
      `SELECT count() AS rows FROM ${env.table('aws_apigatewayv2_api_integrations_history')} WHERE aws_api_id = {api:String}`, { api: apiId }) as [{ rows: string }];
    assert.equal(Number(historyRows), 4, 'two versions each: the events added none');
    const times = await rows<{ integration_id: string; read: string; event: string; shown: string }>(pipeline,
      `SELECT h.integration_id, toUnixTimestamp64Milli(h.event_time) AS read, toUnixTimestamp64Milli(a.event_time) AS event, toUnixTimestamp64Milli(v.event_time) AS shown
         FROM ${env.table('aws_apigatewayv2_api_integrations_history')} AS h
         JOIN ${env.table('aws_apigatewayv2_api_integrations_attributions')} AS a USING (arn, version)
         JOIN ${env.table('aws_apigatewayv2_api_integrations_history_attributed')} AS v USING (arn, version)
        WHERE h.aws_api_id = {api:String} AND h.version = 2 ORDER BY h.integration_id`, { api: apiId });
    assert.equal(times.length, 2, JSON.stringify(times));
    for (const { read, event, shown } of times) {
      assert.equal(Number(shown), Number(event) + 999, 'dated by its CloudTrail event, at the end of its second');
      assert.ok(Number(shown) < Number(read), `before the snapshot's read: ${JSON.stringify(times)}`);
    }
    const drift = createDriftQueries({ client: pipeline.clickhouse!, database: env.config.clickhouseDatabase });
    // What changed by the end of the changes' second: both, though the snapshot read them later.
    const changedBy = await drift.changes(0, Math.max(...times.map((t) => Number(t.shown))), { api: apiId }, 10);
    assert.deepEqual(changedBy.filter((c) => c.version === 2).map((c) => [c.operation, c.principal_arn]).sort(),
      [['DELETE', PRINCIPALS.bob.arn], ['UPDATE', PRINCIPALS.alice.arn]]);
    const versionsOfKept = await drift.history(`${apiId}/${kept.integrationId}`);
    assert.deepEqual(versionsOfKept.map((v) => [v.version, v.source_type, v.principal_arn]), [[1, 'CLOUDTRAIL', PRINCIPALS.ci.arn], [2, 'SNAPSHOT', PRINCIPALS.alice.arn]]);
    const who = await drift.who(Date.now() - 60_000, Date.now());
    assert.ok(who.some((line) => line.principal_arn === PRINCIPALS.bob.arn && line.deletes >= 1), `query who names bob's deletion: ${JSON.stringify(who)}`);
    const counted = (await env.metrics.sinkMessages.get()).values.find((value) => value.labels.outcome === 'attributed');
    assert.ok((counted?.value ?? 0) >= 2, 'counted in apigw_stream_sink_messages_total{outcome="attributed"}');
  });

  it('makes its checkpoint topic again when it is deleted under the running listener, and loses no change', async () => {
    const checkpointTopic = `${env.config.topic}.listener-checkpoints`;
    await withAdmin(plainKafka(), (admin) => admin.deleteTopics({ topics: [checkpointTopic] }));
    // Each poll commits its checkpoint in a transaction, whose send to the missing topic waits until the pipeline's
    // check (every 10 s) makes the topic again.
    const apiId = await newApi('checkpoints-gone');
    const { eventId } = await changes.createIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://gone.example.com', PayloadFormatVersion: '1.0' });
    const [row] = await applied(eventId);
    assert.equal(row!.principal_arn, PRINCIPALS.alice.arn);
    assert.ok((await withAdmin(plainKafka(), (admin) => admin.listTopics())).includes(checkpointTopic), 'the checkpoint topic exists again');
  });

  it('turns an event for an integration that no longer exists into a DELETE, and ignores other services and REST APIs', async () => {
    const apiId = await newApi('vanishing');
    const { integrationId } = await changes.createIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://gone.example.com', PayloadFormatVersion: '1.0' });
    await converged();
    // Deleted without the listener seeing the deletion; then an update event arrives for it.
    await aws.send(new CreateIntegrationCommand({ ApiId: apiId, IntegrationType: 'MOCK' })); // the API lives on
    const { DeleteIntegrationCommand } = await import('@aws-sdk/client-apigatewayv2');
    await aws.send(new DeleteIntegrationCommand({ ApiId: apiId, IntegrationId: integrationId }));
    const stale = changes.record({ eventName: 'UpdateIntegration', principal: PRINCIPALS.bob, requestParameters: { apiId, integrationId, description: 'x' }, responseElements: null });
    const [row] = await applied(stale);
    assert.equal(row!.operation, 'DELETE');

    const before = await topicEnd();
    changes.record({ eventName: 'UpdateIntegration', principal: PRINCIPALS.bob, requestParameters: { restApiId: 'abc123', resourceId: 'r1', httpMethod: 'GET', patchOperations: [] }, responseElements: null });
    changes.record({ eventName: 'PutIntegration', principal: PRINCIPALS.bob, requestParameters: { restApiId: 'abc123', resourceId: 'r1', httpMethod: 'GET', type: 'MOCK' }, responseElements: null });
    changes.record({ eventName: 'DeleteIntegration', principal: PRINCIPALS.bob, requestParameters: { restApiId: 'abc123', resourceId: 'r1', httpMethod: 'GET' }, responseElements: null });
    changes.record({ eventName: 'CreateRestApi', principal: PRINCIPALS.bob, requestParameters: { name: 'v1' }, responseElements: { id: 'abc123' } });
    changes.record({ eventName: 'GetIntegrations', principal: PRINCIPALS.bob, requestParameters: { apiId }, responseElements: null, readOnly: true });
    changes.record({ eventName: 'RunInstances', principal: PRINCIPALS.bob, requestParameters: {}, responseElements: null, eventSource: 'ec2.amazonaws.com' });
    changes.record({ eventName: 'UpdateIntegration', principal: PRINCIPALS.bob, requestParameters: { apiId, integrationId }, responseElements: null, errorCode: 'AccessDenied' });
    // A real change after them: once it is applied, the listener has read past all of the above.
    const barrier = await changes.updateIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationId: (await aws.send(new GetIntegrationsCommand({ ApiId: apiId }))).Items![0]!.IntegrationId!, Description: 'barrier' });
    await applied(barrier);
    assert.equal(await topicEnd() - before, 1 + 1, 'one event for the barrier change, plus its transaction marker');
  });

  it('slows down when CloudTrail throttles, and loses nothing', async () => {
    const apiId = await newApi('throttled');
    const lookupsBefore = trail.stats().lookups;
    trail.throttleNext(6);
    const { eventId } = await changes.createIntegration(PRINCIPALS.ci, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://t.example.com', PayloadFormatVersion: '1.0' });
    await applied(eventId);
    assert.ok(trail.stats().throttled >= 6, 'the throttled calls were made');
    assert.ok(trail.stats().lookups - lookupsBefore >= 7, 'and retried');
    assert.equal((await history(eventId)).length, 1);
  });

  it('reports a region whose calls are denied, retries it with backoff, and the other regions go on', async () => {
    const other = createRecordingClient({ aws: otherAws, trail, region: OTHER_REGION });
    trail.deny(OTHER_REGION);
    const failuresBefore = await pollFailures();
    const deniedApi = (await otherAws.send(new CreateApiCommand({ Name: 'denied', ProtocolType: 'HTTP' }))).ApiId!;
    const waiting = await other.createIntegration(PRINCIPALS.alice, { ApiId: deniedApi, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://d.example.com', PayloadFormatVersion: '1.0' });
    const apiId = await newApi('unaffected');
    const { eventId } = await changes.createIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://u.example.com', PayloadFormatVersion: '1.0' });
    await applied(eventId);
    await waitFor('the denied polls to be counted in apigw_stream_listener_poll_failures_total', async () => (await pollFailures()) > failuresBefore);
    assert.equal((await history(waiting.eventId)).length, 0, 'the denied region applied nothing');
    trail.deny(OTHER_REGION, false);
    await applied(waiting.eventId);
  });

  it('converges with a snapshot racing the listener on the same integration', async () => {
    const apiId = await newApi('race');
    const { integrationId } = await changes.createIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://race.example.com', PayloadFormatVersion: '1.0' });
    for (let round = 0; round < 5; round++) {
      await Promise.all([
        pipeline.snapshotter!.runOnce(),
        changes.updateIntegration(PRINCIPALS.bob, { ApiId: apiId, IntegrationId: integrationId, TimeoutInMillis: 1000 + round }),
      ]);
    }
    await converged();
    const live = await aws.send(new GetIntegrationCommand({ ApiId: apiId, IntegrationId: integrationId }));
    assert.equal(live.TimeoutInMillis, 1004);
  });

  it('kill -9 between producing events and committing the checkpoint loses nothing and repeats nothing', async () => {
    await listener.stop();
    await pipeline.listener!.stop();
    const apiId = await newApi('killed');
    const { integrationId, eventId: createEvent } = await changes.createIntegration(PRINCIPALS.alice, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://k.example.com', PayloadFormatVersion: '1.0' });
    const updateEvent = await changes.updateIntegration(PRINCIPALS.bob, { ApiId: apiId, IntegrationId: integrationId, TimeoutInMillis: 4242 });

    const listen = (extra: Record<string, string>) => {
      const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/apigw-stream.js'), 'listen'], { env: { ...env.env, LOG_LEVEL: 'info', ...extra }, stdio: ['ignore', 'ignore', 'pipe'] });
      const lines = createInterface({ input: child.stderr! });
      return { child, lines };
    };
    const first = listen({ APIGW_LISTENER_COMMIT_DELAY_MS: '120000' });
    await new Promise<void>((resolve, reject) => {
      first.lines.on('line', (line) => { if (line.includes('committing them with the checkpoint after the configured delay')) resolve(); });
      first.child.once('exit', (code) => reject(new Error(`listener exited early with ${code}`)));
    });
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal((await history(createEvent)).length + (await history(updateEvent)).length, 0, 'nothing of the open transaction is visible');

    const second = listen({});
    try {
      await waitFor('the restarted listener to apply the change', async () => (await tableState()).get(`arn:aws:apigateway:${REGION}::/apis/${apiId}/integrations/${integrationId}`) === 4242);
      await new Promise((resolve) => setTimeout(resolve, 1500));
    } finally {
      second.child.kill('SIGTERM');
      await new Promise((resolve) => second.child.once('exit', resolve));
    }
    const rowsOfChange = [...await history(createEvent), ...await history(updateEvent)];
    assert.deepEqual(rowsOfChange.map((row) => [row.operation, row.principal_arn]), [['CREATE', PRINCIPALS.alice.arn], ['UPDATE', PRINCIPALS.bob.arn]],
      'one history row per event, each with its principal: the create as its call answered it, the update as re-read');
  });
  it('skips a record of its checkpoint topic that is not a checkpoint, resumes from the one before it, and says that one is older than CloudTrail keeps', async () => {
    await listener.stop();
    await pipeline.listener!.stop();
    const checkpointTopic = `${env.config.topic}.listener-checkpoints`;
    // The key of this region's checkpoint (account/region): the records below are its latest.
    const [{ account }] = await rows<{ account: string }>(pipeline,
      `SELECT any(account_id) AS account FROM ${env.table('aws_apigatewayv2_api_integrations_history')} WHERE region = {region:String}`, { region: REGION }) as [{ account: string }];
    const key = `${account}/${REGION}`;
    // The last good one from a listener stopped for 100 days: CloudTrail no longer has the events after it.
    const stale = { account_id: account, region: REGION, window_end: Date.now() - 100 * 24 * 3600_000, seen: {} };
    await produce(checkpointTopic, [
      { key, value: JSON.stringify(stale) }, { key, value: 'not a checkpoint' }, { key, value: JSON.stringify({ region: REGION, window_end: 'soon' }) },
    ]);
    const apiId = await newApi('checkpoint-garbage');
    const { integrationId, eventId } = await changes.createIntegration(PRINCIPALS.ci, { ApiId: apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://g.example.com', PayloadFormatVersion: '1.0' });

    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/apigw-stream.js'), 'listen'], { env: { ...env.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => { log += chunk.toString(); });
    try {
      await waitFor('the listener to apply the change', async () => (await tableState()).has(`arn:aws:apigateway:${REGION}::/apis/${apiId}/integrations/${integrationId}`))
        .catch((error: Error) => { throw new Error(`${error.message}; the listener's log: ${log.slice(-1500)}`); });
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    const lines = log.split('\n').filter((line) => line.includes('not a checkpoint'));
    assert.equal(lines.length, 2, `one warning per record skipped: ${log.slice(-1500)}`);
    const resumed = log.split('\n').filter((line) => line.includes('resuming from checkpoint') && line.includes(`"region":"${REGION}"`));
    assert.equal(resumed.length, 1, log.slice(-1500));
    assert.equal((JSON.parse(resumed[0]!) as { from: string }).from, new Date(stale.window_end).toISOString(), 'the region resumed from its last good checkpoint');
    assert.ok(log.split('\n').some((line) => line.includes('older than CloudTrail keeps events') && line.includes(`"region":"${REGION}"`)), log.slice(-1500));
    assert.deepEqual((await history(eventId)).map((row) => [row.operation, row.principal_arn]), [['CREATE', PRINCIPALS.ci.arn]]);
  });
});
