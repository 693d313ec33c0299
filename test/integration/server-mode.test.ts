import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Producer } from 'kafkajs';
import type { ChangeEmitter, Observation } from '../../services/shared/change-emitter.js';
import { openClickHouse, queryRows, type ClickHouseClient } from '../../services/shared/clickhouse.js';
import { sleep } from '../../services/shared/retry.js';
import { mapIntegration } from '../../services/shared/integration-model.js';
import { ensureTopics, withAdmin } from '../../services/shared/kafka.js';
import { STACK_DIR } from '../../stack/layout.js';
import { queryJson, startApigwStream } from '../support/cli.js';
import { cloudTrailSource, snapshotSource } from '../support/changes.js';
import { startClickHouseServer, stopClickHouseServer } from '../support/clickhouse-server-process.js';
import { freePort, openEmitter, plainKafka, testEnvironment, uniqueName, waitFor } from '../support/harness.js';

const ACCOUNT = '123456789012';
const REGION = 'ca-west-1';
const PARTITIONS = 6;
const INTEGRATIONS = 120;
/** Versions of each integration after its creation come one every FEED_SPACING_MS: a feed the sinks follow while they join and leave. */
const VERSIONS = 12;
const FEED_SPACING_MS = 400;
/** The first sink stops once this version is sent. */
const FIRST_STOPS_AT = 8;
/** Integrations the closing snapshot no longer sees: its markers delete them. */
const VANISHED = 10;

const integrationId = (i: number) => `int-${String(i).padStart(3, '0')}`;
const apiId = (i: number) => `api${i % 2}`;
const arnOf = (i: number) => `arn:aws:apigateway:${REGION}::/apis/${apiId(i)}/integrations/${integrationId(i)}`;
const timeoutOf = (version: number) => 1_000 + version;

/** Version `version` (1 = its creation) of every integration, as the listener emits them. */
const changes = (version: number): Observation[] => Array.from({ length: INTEGRATIONS }, (_, i) => ({
  account_id: ACCOUNT, region: REGION, api_id: apiId(i), integration_id: integrationId(i), op: version === 1 ? 'CREATE' as const : 'UPDATE' as const,
  event_time: Date.now(), observed_at: Date.now(), source: cloudTrailSource(`ev-${version}-${i}`), position: `ev-${version}-${i}`,
  api: { name: `server-${apiId(i)}`, protocol_type: 'HTTP', api_endpoint: null },
  after: mapIntegration(REGION, apiId(i), { IntegrationId: integrationId(i), IntegrationType: 'HTTP_PROXY', TimeoutInMillis: timeoutOf(version) }),
}));

/**
 * Every insert is held back this long: a sink's write is then still running when its partitions go to the other
 * sink, which reads the tables without it. A sink whose batches ended before their rows were written would apply
 * those events again, and both would write them.
 */
const INSERT_DELAY_MS = 300;

describe('a ClickHouse server shared by two sinks (CLICKHOUSE_URL=http://…)', { timeout: 240_000 }, () => {
  const dataDir = join(STACK_DIR, 'test-data', uniqueName('server'));
  let server: ChildProcess;
  let env: ReturnType<typeof testEnvironment>;
  let client: ClickHouseClient;
  let producer: Producer;
  let emitter: ChangeEmitter;
  const sinks: ReturnType<typeof startApigwStream>[] = [];
  const history = () => `${env.config.clickhouseDatabase}.aws_apigatewayv2_api_integrations_history`;
  // 0 until a sink has made the tables.
  const historyRows = () => queryRows<{ n: string }>(client, `SELECT count() AS n FROM ${history()}`).then(([row]) => Number(row!.n), () => 0);

  let port: number;
  // The second sink's /metrics.
  let metricsPort: number;
  const metric = async (line: RegExp) => Number(line.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())?.[1]);

  before(async () => {
    let url: string;
    ({ server, url, port } = await startClickHouseServer(dataDir, { insertDelayMs: INSERT_DELAY_MS }));
    env = testEnvironment({ region: REGION, partitions: PARTITIONS, extra: { CLICKHOUSE_URL: url, LOG_LEVEL: 'fatal' } });
    client = await openClickHouse(env.config.clickhouse);
    await withAdmin(plainKafka(), (admin) => ensureTopics(admin, env.config.topic, PARTITIONS));
    ({ producer, emitter } = await openEmitter(env, PARTITIONS));
  });
  after(async () => {
    for (const sink of sinks) sink.child.kill('SIGKILL');
    await producer?.disconnect();
    await client?.close();
    if (server) await stopClickHouseServer(server);
    await env?.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('applies every change once while the second sink joins and the first leaves mid-stream, and markers delete what vanished', async () => {
    const sinkEnv = { ...env.env, LOG_LEVEL: 'info' };
    await emitter.emit(changes(1));
    sinks.push(startApigwStream(['sink'], sinkEnv));
    await waitFor('the first sink to write', async () => (await historyRows()) > 0, 60_000).catch(sinks[0]!.withLog);

    // The second joins the group while a feed runs: the partitions are shared out again while the first writes. Then the
    // first stops (a rolling restart): its partitions go to the second, which goes on from their committed offsets.
    metricsPort = await freePort();
    sinks.push(startApigwStream(['sink'], { ...sinkEnv, APIGW_METRICS_PORT: String(metricsPort) }));
    for (let version = 2; version <= VERSIONS; version++) {
      await emitter.emit(changes(version));
      if (version === FIRST_STOPS_AT) sinks[0]!.child.kill('SIGTERM');
      await sleep(FEED_SPACING_MS);
    }
    assert.equal(await sinks[0]!.exited, 0, sinks[0]!.log().slice(-1500));
    assert.match(sinks[1]!.log(), /"assignment":\{"[^"]+":\[\d/, 'the second sink had partitions of its own');

    const snapshotId = 'server-closing';
    const startedAt = Date.now();
    await emitter.emit(changes(VERSIONS).slice(VANISHED).map((change) => ({ ...change, op: 'SNAPSHOT' as const, source: snapshotSource(snapshotId), position: snapshotId })));
    await emitter.completeSnapshot({
      account_id: ACCOUNT, region: REGION, observed_at: Date.now(), source: snapshotSource(snapshotId),
      snapshot: { snapshot_id: snapshotId, started_at: startedAt, api_ids: ['api0', 'api1'], integration_count: INTEGRATIONS - VANISHED },
    });

    const expectedRows = INTEGRATIONS * VERSIONS + VANISHED;
    await waitFor('every change and deletion in history', async () => (await historyRows()) >= expectedRows, 90_000).catch(sinks[1]!.withLog);
    const versions = await queryRows<{ arn: string; operation: string; version: number; timeout_in_millis: number | null; rows: number | string }>(client,
      `SELECT arn, operation, version, JSONExtract(coalesce(after, '{}'), 'timeout_in_millis', 'Nullable(Int32)') AS timeout_in_millis, count() AS rows
       FROM ${history()} GROUP BY arn, operation, version, after ORDER BY arn, version`);
    assert.ok(versions.every((row) => Number(row.rows) === 1), `written twice: ${JSON.stringify(versions.filter((row) => Number(row.rows) !== 1))}`);
    assert.equal(versions.length, expectedRows, 'one history row per version');
    for (let i = 0; i < INTEGRATIONS; i++) {
      const own = versions.filter((row) => row.arn === arnOf(i));
      const expected: { operation: string; version: number; timeout_in_millis: number | null }[] = Array.from({ length: VERSIONS }, (_, k) => ({ operation: k === 0 ? 'CREATE' : 'UPDATE', version: k + 1, timeout_in_millis: timeoutOf(k + 1) }));
      if (i < VANISHED) expected.push({ operation: 'DELETE', version: VERSIONS + 1, timeout_in_millis: null });
      assert.deepEqual(own.map(({ operation, version, timeout_in_millis }) => ({ operation, version, timeout_in_millis })), expected, arnOf(i));
    }

    // `query` talks to the server itself: there is no engine directory to be held.
    const current = await queryJson<{ arn: string; timeout_in_millis: number }[]>(['current'], env.env);
    assert.deepEqual(current.map(({ arn, timeout_in_millis }) => [arn, timeout_in_millis]).sort(),
      Array.from({ length: INTEGRATIONS - VANISHED }, (_, k) => [arnOf(k + VANISHED), timeoutOf(VERSIONS)]).sort());
  });

  it('goes on where it was when the server restarts under it: each change written once', async () => {
    const sink = sinks[1]!;
    const before = await historyRows();
    const live = INTEGRATIONS - VANISHED;
    await stopClickHouseServer(server);
    // Changes arrive while the server is away: the sink's writes fail and wait out their retries.
    await emitter.emit(changes(VERSIONS + 1).slice(VANISHED));
    await waitFor('the sink to find the server gone', async () => /ClickHouse (write|read) failed; retrying/.test(sink.log()), 30_000).catch(sink.withLog);
    ({ server } = await startClickHouseServer(dataDir, { insertDelayMs: INSERT_DELAY_MS, port }));
    await emitter.emit(changes(VERSIONS + 2).slice(VANISHED));

    await waitFor('both versions in history', async () => (await historyRows()) >= before + 2 * live, 90_000).catch(sink.withLog);
    assert.equal(sink.child.exitCode, null, 'the sink is still running');
    assert.ok(await metric(/^apigw_stream_sink_clickhouse_retries_total\{operation="write"\} (\d+)$/m) >= 1, 'its retries counted');
    // Every insert waits 300 ms at this server: no write of a block takes under 0.25 s.
    assert.ok(await metric(/^apigw_stream_sink_write_seconds_count (\d+)$/m) > 0);
    assert.equal(await metric(/^apigw_stream_sink_write_seconds_bucket\{le="0.25"\} (\d+)$/m), 0);
    const counts = await queryRows<{ version: number; rows: number | string }>(client,
      `SELECT version, count() AS rows FROM ${history()} WHERE version > {last:UInt32} AND operation != 'DELETE' GROUP BY version ORDER BY version`, { last: VERSIONS });
    assert.deepEqual(counts.map(({ version, rows }) => [version, Number(rows)]), [[VERSIONS + 1, live], [VERSIONS + 2, live]]);
    const current = await queryJson<{ timeout_in_millis: number }[]>(['current'], env.env);
    assert.deepEqual([...new Set(current.map((row) => row.timeout_in_millis))], [timeoutOf(VERSIONS + 2)]);
  });
});
