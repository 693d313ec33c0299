import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Producer } from 'kafkajs';
import type { ChangeEmitter, Observation } from '../../services/shared/change-emitter.js';
import { openClickHouse, queryRows, type ClickHouseClient } from '../../services/shared/clickhouse.js';
import { mapIntegration } from '../../services/shared/integration-model.js';
import { ensureTopics, withAdmin } from '../../services/shared/kafka.js';
import { STACK_DIR } from '../../stack/layout.js';
import { startApigwStream } from '../support/cli.js';
import { cloudTrailSource, snapshotSource } from '../support/changes.js';
import { startClickHouseServer, stopClickHouseServer } from '../support/clickhouse-server-process.js';
import { openEmitter, plainKafka, testEnvironment, uniqueName, waitFor } from '../support/harness.js';

const ACCOUNT = '123456789012';
const REGION = 'ap-south-2';
/** Each in an API of its own: a look-up of 200 of their keys is ~17 KiB of URL, and the APIs' ids ~10 KiB. */
const INTEGRATIONS = 600;
const GROWN_TO_PARTITIONS = 4;

const apiId = (i: number) => `a${i.toString(36).padStart(9, '0')}`;
const integrationId = (i: number) => `i${i.toString(36).padStart(6, '0')}`;
const API_IDS = Array.from({ length: INTEGRATIONS }, (_, i) => apiId(i));

/** Version `version` (1 = its creation) of every integration, as the listener emits them. */
const changes = (version: number): Observation[] => Array.from({ length: INTEGRATIONS }, (_, i) => ({
  account_id: ACCOUNT, region: REGION, api_id: apiId(i), integration_id: integrationId(i), op: version === 1 ? 'CREATE' as const : 'UPDATE' as const,
  event_time: Date.now(), observed_at: Date.now(), source: cloudTrailSource(`long-${version}-${i}`), position: `long-${version}-${i}`,
  api: { name: `long-${i}`, protocol_type: 'HTTP', api_endpoint: null },
  after: mapIntegration(REGION, apiId(i), { IntegrationId: integrationId(i), IntegrationType: 'HTTP_PROXY', TimeoutInMillis: 1_000 + version }),
}));

// The test server takes 8 KiB of request line and headers, as a proxy in front of a server does: query parameters
// that stayed in the URL would be refused with 431, and the sink would start over again and again.
describe('a ClickHouse server behind a proxy that takes 8 KiB of headers: the sink sends long lists of keys in the body', { timeout: 240_000 }, () => {
  const dataDir = join(STACK_DIR, 'test-data', uniqueName('long'));
  let server: ChildProcess;
  let env: ReturnType<typeof testEnvironment>;
  let sinkEnv: NodeJS.ProcessEnv;
  let client: ClickHouseClient;
  let producer: Producer | undefined;
  let sink: ReturnType<typeof startApigwStream> | undefined;
  const table = (name: string) => `${env.config.clickhouseDatabase}.${name}`;
  const count = async (query: string) => Number((await queryRows<{ n: string }>(client, query).catch(() => [{ n: '0' }]))[0]!.n);
  const historyRows = () => count(`SELECT count() AS n FROM ${table('aws_apigatewayv2_api_integrations_history')}`);

  async function stopSink(): Promise<void> {
    sink!.child.kill('SIGTERM');
    assert.equal(await sink!.exited, 0, sink!.log().slice(-1500));
    assert.doesNotMatch(sink!.log(), /ClickHouse (read|write) failed/);
  }

  // The emitter for the partition count the topic has now: it sends markers to every partition it knows.
  let emitter: { partitions: number; emitter: ChangeEmitter } | undefined;
  async function emit(partitions: number, observations: Observation[], marker?: Parameters<ChangeEmitter['completeSnapshot']>[0]): Promise<void> {
    if (emitter?.partitions !== partitions) {
      await producer?.disconnect();
      let opened: ChangeEmitter;
      ({ producer, emitter: opened } = await openEmitter(env, partitions));
      emitter = { partitions, emitter: opened };
    }
    await emitter.emitter.emit(observations);
    if (marker) await emitter.emitter.completeSnapshot(marker);
  }

  async function snapshot(snapshotId: string): Promise<void> {
    const startedAt = Date.now();
    await emit(GROWN_TO_PARTITIONS, changes(2).map((change) => ({ ...change, op: 'SNAPSHOT' as const, source: snapshotSource(snapshotId), position: snapshotId })), {
      account_id: ACCOUNT, region: REGION, observed_at: Date.now(), source: snapshotSource(snapshotId),
      snapshot: { snapshot_id: snapshotId, started_at: startedAt, api_ids: API_IDS, integration_count: INTEGRATIONS },
    });
  }

  before(async () => {
    let url: string;
    ({ server, url } = await startClickHouseServer(dataDir));
    env = testEnvironment({ region: REGION, partitions: 1, extra: { CLICKHOUSE_URL: url } });
    sinkEnv = { ...env.env, LOG_LEVEL: 'info' };
    client = await openClickHouse(env.config.clickhouse);
    await withAdmin(plainKafka(), (admin) => ensureTopics(admin, env.config.topic, 1));
  });
  after(async () => {
    sink?.child.kill('SIGKILL');
    await producer?.disconnect();
    await client?.close();
    if (server) await stopClickHouseServer(server);
    await env?.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a restarted sink looks up the keys it does not hold, 200 at a time', async () => {
    await emit(1, changes(1));
    sink = startApigwStream(['sink'], sinkEnv);
    await waitFor('the creations in history', async () => (await historyRows()) === INTEGRATIONS, 60_000).catch(sink.withLog);
    await stopSink();

    await emit(1, changes(2));
    sink = startApigwStream(['sink'], sinkEnv);
    await waitFor('the updates in history', async () => (await historyRows()) === 2 * INTEGRATIONS, 60_000).catch(sink.withLog);
    await stopSink();
    const versions = await queryRows<{ version: number; rows: string }>(client,
      `SELECT version, count() AS rows FROM ${table('aws_apigatewayv2_api_integrations_history')} GROUP BY version ORDER BY version`);
    assert.deepEqual(versions.map(({ version, rows }) => [version, Number(rows)]), [[1, INTEGRATIONS], [2, INTEGRATIONS]]);
  });

  it('once the topic has more partitions, a marker naming every API hands the integrations over to their new partitions', async () => {
    await withAdmin(plainKafka(), (admin) => admin.createPartitions({ topicPartitions: [{ topic: env.config.topic, count: GROWN_TO_PARTITIONS }] }));
    sink = startApigwStream(['sink'], sinkEnv);
    // The sink's first read of partition 0 began before it joined: only the second one's marker deletes or moves.
    await snapshot('long-1');
    await snapshot('long-2');
    const moved = await waitFor('the hand-over', async () => /"moved":(\d+)/.exec(sink!.log())?.[1], 60_000).catch(sink.withLog);
    const current = table('aws_apigatewayv2_api_integrations');
    await waitFor('every current row in its partition', async () => (await count(`SELECT count() AS n FROM ${current} FINAL WHERE kafka_partition > 0`)) === Number(moved), 30_000)
      .catch(sink.withLog);
    assert.ok(Number(moved) > INTEGRATIONS / 2, `most keys go to the new partitions: ${moved}`);
    assert.equal(await count(`SELECT count() AS n FROM ${current} FINAL WHERE is_deleted = 0`), INTEGRATIONS);
    assert.equal(await historyRows(), 2 * INTEGRATIONS, 'the re-reads and markers add nothing to history');
    assert.equal(await count(`SELECT count() AS n FROM ${table('aws_apigatewayv2_apis')} FINAL WHERE is_deleted = 0`), INTEGRATIONS, 'every API lives');
    await stopSink();
  });
});
