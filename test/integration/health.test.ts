import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { HealthReport } from '../../services/shared/health.js';
import { resetEmulator, seedSampleInventory } from '../../stack/sample-inventory.js';
import { startApigwStream } from '../support/cli.js';
import { startCloudTrailServer, type CloudTrailServer } from '../support/cloudtrail-server.js';
import { awsClient, freePort, motoEndpoint, testEnvironment, waitFor } from '../support/harness.js';

const REGION = 'ca-central-1';
const OWN_ACCOUNT = '123456789012';

describe('/healthz: ready while every service does its work, and names the one that does not', { timeout: 180_000 }, () => {
  const aws = awsClient(REGION);
  let trail: CloudTrailServer;
  let port: number;
  let env: ReturnType<typeof testEnvironment>;

  before(async () => {
    await resetEmulator(motoEndpoint);
    await seedSampleInventory(aws, { httpApis: 2, websocketApis: 0, prefix: 'health' });
    trail = await startCloudTrailServer();
    port = await freePort();
    env = testEnvironment({ region: REGION, extra: {
      AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint,
      APIGW_LISTENER_POLL_SECONDS: '0.3',
      APIGW_LISTENER_LOOKBACK_HOURS: '1',
      APIGW_METRICS_PORT: String(port),
    } });
  });
  after(async () => {
    await trail?.close();
    aws.destroy();
    await env?.cleanup();
  });

  it('answers 200 once run\'s services work, 503 naming the region whose polls fail, and 200 again once they pass', async () => {
    const { child: run, exited, log, withLog } = startApigwStream(['run'], env.env);
    const healthz = async () => {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      return response && { status: response.status, report: await response.json() as HealthReport };
    };
    try {
      const ready = await waitFor('a ready answer, the first snapshot written and the sink caught up', async () => {
        const answer = await healthz();
        const { snapshotter, sink } = answer?.report.services ?? {};
        const caughtUp = sink && Object.values(sink.lag as Record<string, number | null>).every((lag) => lag === 0);
        return answer?.status === 200 && snapshotter?.last_snapshot && caughtUp ? answer.report : undefined;
      }, 90_000).catch(withLog);
      assert.equal(ready.status, 'running');
      assert.deepEqual(ready.services.sink, { ok: true, consuming: true, lag: { 0: 0, 1: 0, 2: 0 } });
      const snapshot = ready.services.snapshotter!.last_snapshot as { regions: number; failed: unknown[] };
      assert.deepEqual([snapshot.regions, snapshot.failed], [1, []]);
      assert.deepEqual((ready.services.listener!.regions as { account_id: string; region: string; failed_polls_in_a_row: number }[])
        .map(({ account_id, region, failed_polls_in_a_row }) => ({ account_id, region, failed_polls_in_a_row })),
      [{ account_id: OWN_ACCOUNT, region: REGION, failed_polls_in_a_row: 0 }]);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /^apigw_stream_sink_lag\{partition="0"\} 0$/m);
      const heapLimit = /^apigw_stream_nodejs_heap_size_limit_bytes (\d+)$/m.exec(metrics);
      assert.ok(heapLimit && Number(heapLimit[1]) > 100 * 2 ** 20, `the heap limit is exported: ${heapLimit?.[0]}`);
      const completedAt = new RegExp(`^apigw_stream_snapshot_last_completed_timestamp_seconds\\{account_id="${OWN_ACCOUNT}",region="${REGION}"\\} ([\\d.]+)$`, 'm').exec(metrics);
      assert.ok(completedAt && Math.abs(Number(completedAt[1]) - Date.now() / 1000) < 90, `the last snapshot's time is now: ${completedAt?.[0]}`);

      trail.deny(REGION); // as CloudTrail does once the role lost cloudtrail:LookupEvents
      const failing = await waitFor('a not-ready answer', async () => {
        const answer = await healthz();
        return answer?.status === 503 ? answer.report : undefined;
      }).catch(withLog);
      assert.equal(failing.status, 'running');
      assert.equal(failing.ready, false);
      assert.equal(failing.services.sink!.ok, true);
      assert.equal(failing.services.listener!.ok, false);
      const [region] = failing.services.listener!.regions as { region: string; failed_polls_in_a_row: number }[];
      assert.equal(region!.region, REGION);
      assert.ok(region!.failed_polls_in_a_row >= 3, `failed polls in a row: ${region!.failed_polls_in_a_row}`);

      trail.deny(REGION, false);
      await waitFor('a ready answer again', async () => (await healthz())?.status === 200).catch(withLog);
    } finally {
      run.kill('SIGTERM');
      // Gone before the data directory is removed, whether the test passed or not.
      await exited;
    }
    assert.equal(await exited, 0, `run exits 0 on SIGTERM; its log:\n${log().slice(-2000)}`);
  });
});
