import { randomUUID } from 'node:crypto';
import type { ApiGatewayV2Client } from '@aws-sdk/client-apigatewayv2';
import pLimit from 'p-limit';
import { scopeKey, scopeLabels, type AwsScope } from '../shared/aws-scope.js';
import { SEND_BATCH, type ChangeEmitter, type Observation } from '../shared/change-emitter.js';
import { describeError } from '../shared/errors.js';
import type { ServiceHealth } from '../shared/health.js';
import { mapIntegration, type ChangeSource } from '../shared/integration-model.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import { sleep } from '../shared/retry.js';
import { createInventoryReader } from './inventory-reader.js';
import type { SnapshotProgress } from './progress.js';

export interface SnapshotterDeps {
  /** Every region of every account to read, as of now (asked again for every snapshot). */
  scopes: () => Promise<AwsScope[]>;
  clientFor: (scope: AwsScope) => ApiGatewayV2Client;
  emitter: ChangeEmitter;
  /** Concurrent GetIntegrations calls per account and region. */
  concurrency: number;
  /** Regions (of any account) read at once: with many accounts, all at once would open that many times `concurrency` calls. */
  regionsAtOnce: number;
  logger: Logger;
  metrics: Metrics;
  progress: () => SnapshotProgress;
  clock?: () => number;
}

/** How often a snapshotter between two snapshots asks whether an account joined. */
const JOINED_CHECK_MS = 5_000;

/** How the snapshot of one account's region went. */
export interface RegionResult extends AwsScope {
  apis: number;
  integrations: number;
  completed: boolean;
  error?: string;
}

/**
 * Reads the full inventory of every region of every account and emits one SNAPSHOT event per integration, then a
 * completion marker per account and region. One whose read fails gets no marker: absence is only trusted after a
 * complete read.
 */
export function createSnapshotter(deps: SnapshotterDeps) {
  const clock = deps.clock ?? Date.now;
  const log = deps.logger.child({ component: 'snapshotter' });
  let last: { finishedAt: number; regions: RegionResult[] } | undefined;

  async function snapshotScope(scope: AwsScope, snapshotId: string, startedAt: number, progress: SnapshotProgress, signal?: AbortSignal): Promise<RegionResult> {
    const { accountId, region } = scope;
    // Stopped while it waited for its turn: nothing of it is read.
    signal?.throwIfAborted();
    const reader = createInventoryReader({ client: deps.clientFor(scope), scope, metrics: deps.metrics });
    const source: ChangeSource = {
      type: 'SNAPSHOT', snapshot_id: snapshotId,
      cloudtrail_event_id: null, cloudtrail_event_name: null, principal_arn: null, source_ip: null, user_agent: null,
    };
    const apis = await reader.listApis();
    progress.addApis(apis.length);
    const limit = pLimit(deps.concurrency);
    const seenApiIds: string[] = [];
    let integrationCount = 0;
    // Listing does not wait for Kafka: observations are sent in batches behind it (SEND_BATCH, short stalls of the
    // JS thread), one send at a time, and all of them are acknowledged before the completion marker.
    let buffer: Observation[] = [];
    let sending: Promise<void> = Promise.resolve();
    const flush = () => {
      const batch = buffer;
      buffer = [];
      sending = sending.then(() => deps.emitter.emit(batch));
      return sending;
    };

    const listed = Promise.all(apis.map((api) => limit(async () => {
      // Stopping: no API is read after the signal, and no completion marker is written.
      signal?.throwIfAborted();
      const apiId = api.ApiId!;
      // The time the read was sent: the state it returns is at least that new. (The time it came back is not:
      // a slow answer would make an old state look newer than a CloudTrail re-read that overtook it.)
      const observedAt = clock();
      const integrations = await reader.listIntegrations(apiId);
      signal?.throwIfAborted();
      if (integrations === null) {
        log.info({ ...scope, apiId }, 'API vanished while the snapshot read it; its integrations count as deleted');
        progress.apiDone(0);
        return;
      }
      const observations: Observation[] = integrations.map((integration) => ({
        account_id: accountId,
        region,
        api_id: apiId,
        integration_id: integration.IntegrationId!,
        op: 'SNAPSHOT',
        event_time: observedAt,
        observed_at: observedAt,
        source,
        position: `snapshot:${snapshotId}`,
        api: { name: api.Name ?? null, protocol_type: api.ProtocolType ?? null, api_endpoint: api.ApiEndpoint ?? null },
        after: mapIntegration(region, apiId, integration),
      }));
      buffer.push(...observations);
      if (buffer.length >= SEND_BATCH) flush().catch(() => undefined); // the failure surfaces at the final await
      seenApiIds.push(apiId);
      integrationCount += observations.length;
      progress.apiDone(observations.length);
    })));
    try {
      await listed;
    } finally {
      // Interrupted or failed: the send under way ends before the producer may be closed; what is buffered is not sent.
      await sending.catch(() => undefined);
    }
    await flush();

    await deps.emitter.completeSnapshot({
      account_id: accountId,
      region,
      observed_at: clock(),
      source,
      snapshot: { snapshot_id: snapshotId, started_at: startedAt, api_ids: seenApiIds.sort(), integration_count: integrationCount },
    });
    deps.metrics.snapshotsCompleted.inc(scopeLabels(scope));
    deps.metrics.snapshotLastCompleted.set(scopeLabels(scope), clock() / 1000);
    return { ...scope, apis: apis.length, integrations: integrationCount, completed: true };
  }

  /**
   * One snapshot of `scopes`. `signal` stops it between two APIs: a region it stopped gets no completion marker, so
   * nothing is deleted for it (its `error` says it was interrupted).
   */
  async function snapshot(scopes: AwsScope[], signal?: AbortSignal): Promise<{ snapshotId: string; regions: RegionResult[] }> {
    const snapshotId = randomUUID();
    const startedAt = clock();
    const progress = deps.progress();
    log.info({ snapshotId, regions: [...new Set(scopes.map((s) => s.region))], accounts: [...new Set(scopes.map((s) => s.accountId))] }, 'snapshot started');
    const turn = pLimit(deps.regionsAtOnce);
    const regions = await Promise.all(scopes.map((scope) => turn(async (): Promise<RegionResult> => {
      try {
        return await snapshotScope(scope, snapshotId, startedAt, progress, signal);
      } catch (error) {
        if (signal?.aborted) {
          log.info({ ...scope, snapshotId }, 'snapshot of region interrupted; no completion marker, nothing is deleted');
          return { ...scope, apis: 0, integrations: 0, completed: false, error: 'interrupted' };
        }
        log.error({ ...scope, snapshotId, err: error }, 'snapshot of region failed; no completion marker, nothing is deleted');
        return { ...scope, apis: 0, integrations: 0, completed: false, error: describeError(error) };
      }
    })));
    progress.stop();
    const integrations = regions.reduce((sum, r) => sum + r.integrations, 0);
    log.info({ snapshotId, integrations, seconds: (clock() - startedAt) / 1000, failedRegions: regions.filter((r) => !r.completed).map(scopeKey) }, 'snapshot finished');
    return { snapshotId, regions };
  }

  /** One snapshot of every region of every account read now. */
  async function runOnce(signal?: AbortSignal): Promise<{ snapshotId: string; regions: RegionResult[] }> {
    const result = await snapshot(await deps.scopes(), signal);
    last = { finishedAt: clock(), regions: [...result.regions] };
    return result;
  }

  return {
    runOnce,
    /** Not ok while the last snapshot left a region unread (its marker unwritten): what went there is not deleted. */
    health(): ServiceHealth {
      if (!last) return { ok: true, last_snapshot: null };
      const failed = last.regions.filter((r) => !r.completed).map((r) => ({ account_id: r.accountId, region: r.region, error: r.error }));
      return { ok: failed.length === 0, last_snapshot: { finished_at: new Date(last.finishedAt).toISOString(), regions: last.regions.length, failed } };
    },
    /**
     * Snapshots every `intervalSeconds` until the signal aborts. In between, the regions of an account that joined
     * (a new listing of the organization) are read within JOINED_CHECK_MS, not at the next snapshot: until then the
     * tables would hold only the changes the listener saw there.
     */
    async runForever(intervalSeconds: number, signal: AbortSignal): Promise<void> {
      while (!signal.aborted) {
        const read = new Set((await runOnce(signal)).regions.map(scopeKey));
        const next = Date.now() + intervalSeconds * 1000; // real time, as the sleeps are
        while (!signal.aborted && Date.now() < next) {
          await sleep(Math.min(JOINED_CHECK_MS, next - Date.now()), signal);
          const joined = signal.aborted ? [] : (await deps.scopes()).filter((scope) => !read.has(scopeKey(scope)));
          if (joined.length === 0) continue;
          log.info({ accounts: [...new Set(joined.map((s) => s.accountId))] }, 'accounts joined since the last snapshot: reading them now');
          const { regions } = await snapshot(joined, signal);
          for (const region of regions) read.add(scopeKey(region));
          last?.regions.push(...regions);
        }
      }
    },
  };
}

export type Snapshotter = ReturnType<typeof createSnapshotter>;
