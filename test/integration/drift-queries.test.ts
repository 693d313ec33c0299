import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { Pipeline } from '../../cli/pipeline.js';
import { sleep } from '../../services/shared/retry.js';
import { PROJECT_ROOT } from '../../stack/layout.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { apigwStream, queryJson, tailJson } from '../support/cli.js';
import { startCloudTrailServer, type CloudTrailServer } from '../support/cloudtrail-server.js';
import { COLUMN_NAMES, columnsOf, emulatorInventory, type Columns } from '../support/emulator-state.js';
import { awsClient, motoEndpoint, rows, runListener, testEnvironment, waitFor } from '../support/harness.js';
import { PRINCIPALS, createRecordingClient } from '../support/recorded-changes.js';

const REGION = 'ca-central-1';
const aws = awsClient(REGION);
let trail: CloudTrailServer;
let env: ReturnType<typeof testEnvironment>;
let pipeline: Pipeline;
let listener: ReturnType<typeof runListener>;

/** What the emulator held after each step, and a moment after the step was applied and before the next began. */
const steps: { at: number; state: Map<string, Columns> }[] = [];
let apis: SampleApi[];
let integrationA: { apiId: string; integrationId: string; arn: string };
const principalOfChanges = new Map<string | null, number>();

const arnOf = (apiId: string, integrationId: string) => `arn:aws:apigateway:${REGION}::/apis/${apiId}/integrations/${integrationId}`;
const iso = (ms: number) => new Date(ms).toISOString();

const query = <T>(args: string[]) => queryJson<T>(args, env.env);

async function applied(eventIds: string[]): Promise<void> {
  await waitFor('the listener to apply the changes', async () => {
    const found = await rows<{ n: string }>(pipeline, `SELECT uniqExact(cloudtrail_event_id) AS n FROM ${env.table('aws_apigatewayv2_api_integrations_history')} WHERE cloudtrail_event_id IN {ids:Array(String)}`, { ids: eventIds });
    return Number(found[0]!.n) === eventIds.length;
  });
}

async function recordStep(): Promise<void> {
  steps.push({ at: Date.now(), state: await emulatorInventory(aws, REGION) });
  await sleep(1100); // CloudTrail keeps whole seconds: the next step's events fall after this moment.
}

const count = (principal: string | null, n = 1) => principalOfChanges.set(principal, (principalOfChanges.get(principal) ?? 0) + n);

/** The expected diff, computed from two recorded states (maps compared key by key). */
function expectedDiff(from: Map<string, Columns>, to: Map<string, Columns>) {
  const key = (k: string) => `['${k}']`;
  const changes: { field: string; old: unknown; new: unknown }[] = [];
  const compare = (field: string, a: unknown, b: unknown, depth: number) => {
    if (depth > 0 && a && b && typeof a === 'object' && typeof b === 'object') {
      for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
        compare(`${field}${key(k)}`, (a as Columns)[k] ?? null, (b as Columns)[k] ?? null, depth - 1);
      }
    } else if (JSON.stringify(a) !== JSON.stringify(b)) changes.push({ field, old: a, new: b });
  };
  const changed: { arn: string; changes: typeof changes }[] = [];
  for (const [arn, columns] of to) {
    const old = from.get(arn);
    if (!old) continue;
    changes.length = 0;
    for (const column of COLUMN_NAMES) compare(column, old[column], columns[column], column === 'response_parameters' ? 2 : column.endsWith('_parameters') || column === 'request_templates' ? 1 : 0);
    if (changes.length > 0) changed.push({ arn, changes: [...changes] });
  }
  return {
    added: [...to.keys()].filter((arn) => !from.has(arn)).sort(),
    removed: [...from.keys()].filter((arn) => !to.has(arn)).sort(),
    changed: changed.sort((a, b) => a.arn.localeCompare(b.arn)),
  };
}

describe('drift queries over a scripted sequence of changes', { timeout: 300_000 }, () => {
  before(async () => {
    await resetEmulator(motoEndpoint);
    trail = await startCloudTrailServer();
    env = testEnvironment({ region: REGION, partitions: 3, extra: {
      AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, APIGW_LISTENER_POLL_SECONDS: '0.3', APIGW_LISTENER_LOOKBACK_HOURS: '1',
    } });
    const changes = createRecordingClient({ aws, trail, region: REGION });
    pipeline = await env.open({ snapshot: true, listen: true, sink: true });

    // Step 0: an inventory, read by a snapshot (no principal).
    apis = await seedSampleInventory(aws, { httpApis: 3, websocketApis: 2, prefix: 'drift' });
    await pipeline.snapshotter!.runOnce();
    await pipeline.sink!.waitForCatchUp();
    count(null, apis.reduce((n, api) => n + api.integrationIds.length, 0));
    listener = runListener(pipeline);
    await recordStep();

    // Step 1: alice changes A's timeout and request parameters, bob deletes B, alice creates C.
    const withParameters = apis.find((api) => api.protocol === 'HTTP' && api.integrationIds.length >= 3)!;
    integrationA = { apiId: withParameters.apiId, integrationId: withParameters.integrationIds[0]!, arn: arnOf(withParameters.apiId, withParameters.integrationIds[0]!) };
    const first = [
      await changes.updateIntegration(PRINCIPALS.alice, { ApiId: integrationA.apiId, IntegrationId: integrationA.integrationId, TimeoutInMillis: 1111 }),
      await changes.deleteIntegration(PRINCIPALS.bob, withParameters.apiId, withParameters.integrationIds[1]!),
    ];
    const created = await changes.createIntegration(PRINCIPALS.alice, {
      ApiId: apis[1]!.apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://c.example.com', PayloadFormatVersion: '1.0',
      RequestParameters: { 'append:header.x-team': 'payments', 'overwrite:path': '/v1' },
    });
    await applied([...first, created.eventId]);
    count(PRINCIPALS.alice.arn, 2);
    count(PRINCIPALS.bob.arn, 1);
    await recordStep();

    // Step 2: bob describes A, the CI role deletes an API, alice changes one request parameter of C.
    const doomed = apis[apis.length - 1]!;
    const second = [
      await changes.updateIntegration(PRINCIPALS.bob, { ApiId: integrationA.apiId, IntegrationId: integrationA.integrationId, Description: 'second' }),
      await changes.deleteApi(PRINCIPALS.ci, doomed.apiId),
      await changes.updateIntegration(PRINCIPALS.alice, { ApiId: apis[1]!.apiId, IntegrationId: created.integrationId, RequestParameters: { 'append:header.x-team': 'payments', 'overwrite:path': '/v2' } }),
    ];
    await applied(second);
    count(PRINCIPALS.bob.arn, 1);
    count(PRINCIPALS.ci.arn, doomed.integrationIds.length);
    count(PRINCIPALS.alice.arn, 1);
    await recordStep();
  });

  after(async () => {
    await listener?.stop();
    await pipeline?.close();
    await trail?.close();
    aws.destroy();
    await env?.cleanup();
  });

  it('as-of each step equals the emulator as recorded at that step', async () => {
    for (const [index, step] of steps.entries()) {
      const answer = await query<Record<string, unknown>[]>(['as-of', iso(step.at), '--region', REGION]);
      const actual = new Map(answer.map((row) => [String(row.arn), columnsOf(row)]));
      assert.deepEqual([...actual].sort(), [...step.state].sort(), `step ${index}`);
    }
  });

  it('current equals the last step', async () => {
    const answer = await query<Record<string, unknown>[]>(['current', '--region', REGION]);
    assert.deepEqual(new Map(answer.map((row) => [String(row.arn), columnsOf(row)])), steps[2]!.state);
  });

  it('diff between two steps equals the set difference of their recordings, field by field', async () => {
    for (const [from, to] of [[0, 1], [1, 2], [0, 2]] as const) {
      const answer = await query<{ added: { arn: string }[]; removed: { arn: string }[]; changed: { arn: string; changes: unknown[] }[] }>(
        ['diff', '--from', iso(steps[from]!.at), '--to', iso(steps[to]!.at), '--region', REGION]);
      const expected = expectedDiff(steps[from]!.state, steps[to]!.state);
      assert.deepEqual({
        added: answer.added.map((v) => v.arn).sort(),
        removed: answer.removed.map((v) => v.arn).sort(),
        changed: [...answer.changed].sort((a, b) => a.arn.localeCompare(b.arn)),
      }, expected, `diff ${from} -> ${to}`);
    }
    const backwards = await apigwStream(['query', 'diff', '--from', iso(steps[2]!.at), '--to', iso(steps[0]!.at)], env.env);
    assert.equal(backwards.status, 2, 'a diff from a later moment to an earlier one is refused');
    assert.equal(backwards.stderr, `apigw-stream: --from (${iso(steps[2]!.at)}) is later than --to (${iso(steps[0]!.at)}); give the earlier moment first`);
    const oneKey = await query<{ changed: { arn: string; changes: { field: string }[] }[] }>(['diff', '--from', iso(steps[1]!.at), '--to', iso(steps[2]!.at)]);
    const parameterChanges = oneKey.changed.flatMap((c) => c.changes).filter((c) => c.field.startsWith('request_parameters'));
    assert.deepEqual(parameterChanges, [{ field: "request_parameters['overwrite:path']", old: '/v1', new: '/v2' }], 'one changed request parameter is one change');
  });

  it('history lists each version of an integration once, with who changed which fields', async () => {
    for (const ref of [integrationA.arn, `${integrationA.apiId}/${integrationA.integrationId}`]) {
      const history = await query<{ version: number; operation: string; principal_arn: string | null; changes: { field: string; old: unknown; new: unknown }[] }[]>(['history', ref]);
      assert.deepEqual(history.map((h) => [h.version, h.operation, h.principal_arn]), [
        [1, 'CREATE', null], [2, 'UPDATE', PRINCIPALS.alice.arn], [3, 'UPDATE', PRINCIPALS.bob.arn],
      ]);
      assert.deepEqual(history[1]!.changes.map((c) => c.field), ['timeout_in_millis']);
      assert.equal(history[1]!.changes[0]!.new, 1111);
      assert.deepEqual(history[2]!.changes, [{ field: 'description', old: steps[0]!.state.get(integrationA.arn)!.description, new: 'second' }]);
    }
  });

  it('changes lists each change, the latest first, with who made it and the fields it changed', async () => {
    type Change = { operation: string; integration_id: string; principal_arn: string | null; changed_fields: string[] };
    const byAlice = await query<Change[]>(['changes', '--principal', 'PlatformEngineer/alice']);
    assert.deepEqual(byAlice.map((change) => change.principal_arn), [PRINCIPALS.alice.arn, PRINCIPALS.alice.arn, PRINCIPALS.alice.arn]);
    assert.deepEqual([byAlice[0]!.operation, byAlice[0]!.changed_fields], ['UPDATE', ['request_parameters']], 'the latest first: her change of C in step 2');
    assert.deepEqual(byAlice.map((change) => change.operation).sort(), ['CREATE', 'UPDATE', 'UPDATE']);
    assert.ok(byAlice.some((change) => change.integration_id === integrationA.integrationId && change.changed_fields.join() === 'timeout_in_millis'));
    const secondStep = await query<Change[]>(['changes', '--since', iso(steps[1]!.at), '--region', REGION]);
    assert.equal(secondStep.length, 2 + principalOfChanges.get(PRINCIPALS.ci.arn)!, 'bob\'s, alice\'s and the CI role\'s deletions of step 2');
    const limited = await apigwStream(['query', 'changes', '--limit', '2', '--format', 'json'], env.env);
    assert.equal(limited.status, 0, limited.stderr);
    assert.equal((JSON.parse(limited.stdout) as Change[]).length, 2);
    assert.equal(limited.stderr, 'apigw-stream: the latest 2 changes shown; more match: narrow the range or raise --limit');
  });

  it('who counts the changes of each principal', async () => {
    const answer = await query<{ principal_arn: string | null; changes: number }[]>(['who', '--since', '1 day ago']);
    assert.deepEqual(new Map(answer.map((row) => [row.principal_arn, row.changes])), principalOfChanges);
    const later = await query<{ principal_arn: string | null; changes: number; last_operation: string }[]>(['who', '--since', iso(steps[1]!.at)]);
    assert.deepEqual(later.map((row) => row.principal_arn).sort(), [PRINCIPALS.alice.arn, PRINCIPALS.bob.arn, PRINCIPALS.ci.arn].sort());
    const changesOf = (answer: { principal_arn: string | null; changes: number }[]) => new Map(answer.map((row) => [row.principal_arn, row.changes]));
    const firstStep = await query<{ principal_arn: string | null; changes: number }[]>(['who', '--since', iso(steps[0]!.at), '--until', iso(steps[1]!.at)]);
    assert.deepEqual(changesOf(firstStep), new Map([[PRINCIPALS.alice.arn, 2], [PRINCIPALS.bob.arn, 1]]), 'only the changes between the two moments');
    const ofApi = await query<{ principal_arn: string | null; changes: number }[]>(['who', '--api', integrationA.apiId, '--region', REGION]);
    const integrationsOfApi = apis.find((api) => api.apiId === integrationA.apiId)!.integrationIds.length;
    assert.deepEqual(changesOf(ofApi), new Map([[PRINCIPALS.bob.arn, 2], [null, integrationsOfApi], [PRINCIPALS.alice.arn, 1]]), 'only the changes of that API');
    const backwards = await apigwStream(['query', 'who', '--since', iso(steps[1]!.at), '--until', iso(steps[0]!.at)], env.env);
    assert.equal(backwards.status, 2, backwards.stderr);
  });

  it('rejects hostile input or treats it as data, and never executes it', async () => {
    // What the tables hold, row by row: history as stored, current state as FINAL reads it (a background merge of
    // the ReplacingMergeTree drops superseded versions at any moment, which changes no content).
    const tables = async () => rows<{ history: string; current: string }>(pipeline, `SELECT
      (SELECT (count(), sum(cityHash64(*))) FROM ${env.table('aws_apigatewayv2_api_integrations_history')}) AS history,
      (SELECT (count(), sum(cityHash64(*))) FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL) AS current`);
    const before = await tables();
    for (const args of [
      ['history', "x'); DROP TABLE aws_apigatewayv2_api_integrations_history; --"],
      ['history', "abc/def' OR '1'='1"],
      ['as-of', "2026-01-01' OR 1=1 --"],
      ['as-of', '2026-01-01; DROP DATABASE default'],
      ['who', '--since', '1 day ago /* comment */'],
      ['diff', '--from', "now'--", '--to', 'now'],
    ]) {
      const result = await apigwStream(['query', ...args, '--format', 'json'], env.env);
      assert.equal(result.status, 2, `${args.join(' ')} is refused`);
      assert.equal(result.stderr.split('\n').length, 1, 'in one line');
    }
    for (const hostile of ["x' OR 1=1 --", "'; DROP TABLE aws_apigatewayv2_api_integrations; --", 'a"b\\c;/*d*/']) {
      assert.deepEqual(await query(['current', '--api', hostile]), [], 'a filter value is data: it matches nothing');
      assert.deepEqual(await query(['as-of', 'now', '--account', hostile, '--type', hostile]), []);
      assert.deepEqual(await query(['changes', '--principal', hostile]), []);
      assert.deepEqual(await query(['who', '--region', hostile, '--api', hostile]), []);
    }
    assert.deepEqual(await tables(), before, 'the tables are untouched');
  });

  it('as a table, every row keeps its integration id, and an empty answer is said in words', async () => {
    const diff = await apigwStream(['query', 'diff', '--from', iso(steps[0]!.at), '--region', REGION], env.env);
    assert.equal(diff.status, 0, diff.stderr);
    const expected = expectedDiff(steps[0]!.state, steps.at(-1)!.state);
    for (const arn of [...expected.added, ...expected.removed, ...expected.changed.map((c) => c.arn)]) {
      assert.ok(diff.stdout.includes(arn.split('/').at(-1)!), `the table shows ${arn}'s integration id`);
    }
    const none = await apigwStream(['query', 'history', `${integrationA.apiId}/nosuchid`], env.env);
    assert.deepEqual([none.status, none.stdout, none.stderr], [0, '', `no versions of ${integrationA.apiId}/nosuchid`]);
  });

  it('tail prints the events of one integration with the fields that changed', async () => {
    const events = await tailJson<{ op: string; source: { principal_arn: string | null }; changes?: { field: string }[]; after?: unknown }>(
      ['--from-beginning', '--integration', integrationA.integrationId], env.env, 3);
    assert.deepEqual(events.map((e) => [e.op, e.source.principal_arn]), [['SNAPSHOT', null], ['UPDATE', PRINCIPALS.alice.arn], ['UPDATE', PRINCIPALS.bob.arn]]);
    assert.ok(events[0]!.after, 'the first event of an integration shows its after-image');
    assert.deepEqual(events[2]!.changes!.map((c) => c.field), ['description'], 'later ones what changed');
  });

  it('tail, read by a reader that stops early (| head -1), ends quietly', async () => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/apigw-stream.js'), 'tail', '--from-beginning', '--json'], { env: env.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let code: number | null | string;
    try {
      await new Promise<void>((resolve) => createInterface({ input: child.stdout! }).once('line', () => resolve()));
      child.stdout!.destroy();
      // As with a shell pipe, tail finds the reader gone at its next write: a snapshot gives it events to write.
      await pipeline.snapshotter!.runOnce();
      code = await Promise.race([exited, sleep(30_000).then(() => 'still running')]);
    } finally {
      child.kill('SIGKILL');
    }
    assert.equal(code, 0, stderr);
    assert.equal(stderr, '');
  });

  it('the example consumer, built from kafkajs and the registry client alone, reads the topic', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'examples/consumer.ts')], {
      env: { ...env.env, GROUP_ID: `example-${env.config.topic}` }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (text) => {
        if (text.includes(integrationA.integrationId) && text.includes('Deployer/bob')) resolve(text);
      });
      child.once('exit', (code) => reject(new Error(`the example exited with ${code}`)));
    });
    child.kill('SIGTERM');
    assert.match(line, /UPDATE by arn:aws:sts::123456789012:assumed-role\/Deployer\/bob/);
  });

  // Last: it adds a snapshot and a change, which the tests before do not expect.
  it('tail --changes-only leaves out a snapshot\'s re-reads and markers, and shows the change after them', async () => {
    await pipeline.snapshotter!.runOnce();
    const changes = createRecordingClient({ aws, trail, region: REGION });
    await applied([await changes.updateIntegration(PRINCIPALS.alice, { ApiId: integrationA.apiId, IntegrationId: integrationA.integrationId, TimeoutInMillis: 2222 })]);
    type Event = { op: string; source: { principal_arn: string | null }; changes?: { field: string }[] };
    const ofA = ['--from-beginning', '--account', '123456789012', '--region', REGION, '--integration', integrationA.integrationId];
    const everything = await tailJson<Event>(ofA, env.env, 4);
    assert.deepEqual([everything[3]!.op, everything[3]!.changes], ['SNAPSHOT', []], 'without it, the re-read that changed nothing');
    const changed = await tailJson<Event>([...ofA, '--changes-only'], env.env, 4);
    assert.deepEqual(changed.map((e) => e.op), ['SNAPSHOT', 'UPDATE', 'UPDATE', 'UPDATE']);
    assert.deepEqual([changed[3]!.source.principal_arn, changed[3]!.changes!.map((c) => c.field)], [PRINCIPALS.alice.arn, ['timeout_in_millis']]);
  });
});
