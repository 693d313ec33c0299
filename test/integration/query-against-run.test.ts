import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { endpointFileOf } from '../../services/query/query-endpoint.js';
import { VERSION } from '../../services/shared/version.js';
import { resetEmulator, seedSampleInventory } from '../../stack/sample-inventory.js';
import { apigwStream, queryJson, startApigwStream } from '../support/cli.js';
import { startCloudTrailServer, type CloudTrailServer } from '../support/cloudtrail-server.js';
import { columnsOf, emulatorInventory } from '../support/emulator-state.js';
import { awsClient, motoEndpoint, testEnvironment, waitFor } from '../support/harness.js';

const REGION = 'ap-northeast-1';
const aws = awsClient(REGION);

describe('query while `run` holds the embedded engine', { timeout: 180_000 }, () => {
  let trail: CloudTrailServer;
  let env: ReturnType<typeof testEnvironment>;
  before(async () => {
    await resetEmulator(motoEndpoint);
    await seedSampleInventory(aws, { httpApis: 2, websocketApis: 2, prefix: 'run' });
    trail = await startCloudTrailServer();
    env = testEnvironment({ region: REGION, extra: { AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, APIGW_LISTENER_LOOKBACK_HOURS: '1', LOG_LEVEL: 'info' } });
  });
  after(async () => {
    await trail?.close();
    aws.destroy();
    await env?.cleanup();
  });

  it('answers through the running process, and the process stops cleanly', async () => {
    const { child: run, exited, log } = startApigwStream(['run'], env.env);
    const chdbPath = env.env.CLICKHOUSE_URL!.slice('chdb://'.length);
    const link = `${chdbPath}-link`;
    try {
      const expected = await emulatorInventory(aws, REGION);
      let last = { status: null as number | null, stderr: '' };
      const answer = await waitFor('`query current` to show the snapshot', async () => {
        const result = await apigwStream(['query', 'current', '--format', 'json'], env.env);
        last = result;
        if (result.status !== 0) return undefined;
        const rows = JSON.parse(result.stdout) as Record<string, unknown>[];
        return rows.length === expected.size ? rows : undefined;
      }, 90_000).catch((error: Error) => {
        throw new Error(`${error.message}; last query: exit ${last.status}, ${last.stderr.slice(-500)}; run's log: ${log().slice(-1500)}`);
      });
      assert.ok(existsSync(endpointFileOf(chdbPath)), 'run announced its query API');
      assert.deepEqual(new Map(answer.map((row) => [String(row.arn), columnsOf(row)])), expected);
      // The same directory named through a symbolic link: the announcement is found, not waited for.
      symlinkSync(chdbPath, link);
      const throughLink = await apigwStream(['query', 'current', '--format', 'json'], { ...env.env, CLICKHOUSE_URL: `chdb://${link}` });
      assert.equal(throughLink.status, 0, throughLink.stderr);
      assert.deepEqual(JSON.parse(throughLink.stdout), answer);
      // `who` with its range and filters, through the query API too: the snapshot's creates, made by no principal.
      const who = await queryJson<{ principal_arn: string | null; changes: number }[]>(['who', '--region', REGION, '--until', 'now'], env.env);
      assert.deepEqual(who.map((row) => [row.principal_arn, row.changes]), [[null, expected.size]]);
      assert.deepEqual(await queryJson(['who', '--api', 'nosuchapi'], env.env), []);
      // Mid-upgrade: the process holding the engine runs another release, which answers as that release does.
      const announcement = JSON.parse(readFileSync(endpointFileOf(chdbPath), 'utf8')) as { pid: number };
      writeFileSync(endpointFileOf(chdbPath), JSON.stringify({ ...announcement, version: '0.0.1' }));
      const older = await apigwStream(['query', 'current', '--format', 'json'], env.env);
      assert.equal(older.status, 0, older.stderr);
      assert.deepEqual(JSON.parse(older.stdout), answer);
      assert.equal(older.stderr, `apigw-stream: warning: the process holding the engine (pid ${announcement.pid}) runs apigw-stream 0.0.1, `
        + `this query ${VERSION}: it answers as its release does; restart it to ask this one`);
    } finally {
      run.kill('SIGTERM');
      rmSync(link, { force: true });
    }
    assert.equal(await exited, 0, `run exits 0 on SIGTERM; its log:\n${log().slice(-2000)}`);
    assert.match(log(), /shutting down/);
    assert.equal(existsSync(endpointFileOf(chdbPath)), false, 'and withdraws its query API');
  });
});
