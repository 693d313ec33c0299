import {
  ApiGatewayV2Client, GetApiCommand, GetIntegrationCommand, GetIntegrationsCommand, NotFoundException,
  type Integration,
} from '@aws-sdk/client-apigatewayv2';
import type { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import type { Admin, Kafka, Producer, Transaction } from 'kafkajs';
import type { ChangeEmitter, Observation } from '../shared/change-emitter.js';
import { scopeKey, scopeLabels, type AwsScope } from '../shared/aws-scope.js';
import { DependencyError, describeError } from '../shared/errors.js';
import type { ServiceHealth } from '../shared/health.js';
import { mapIntegration, type ApiInfo, type ChangeSource } from '../shared/integration-model.js';
import { createIdempotentProducer } from '../shared/kafka.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import { sleep } from '../shared/retry.js';
import { createCatchUpProgress } from './catch-up-progress.js';
import type { Checkpoint, CheckpointStore } from './checkpoint-store.js';
import { createCloudTrailReader } from './cloudtrail-reader.js';
import { classifyEvent, type CloudTrailRecord } from './event-classifier.js';
import { stillAsRecorded } from './recorded-integration.js';

export interface ListenerSettings {
  /** Seconds between two polls of an account's region. */
  pollSeconds: number;
  /** How far back to read on a first start, in hours (at most 2160: CloudTrail keeps 90 days). */
  lookbackHours: number;
  /** Seconds each window re-reads before the previous one's end, for events CloudTrail delivers late. */
  overlapSeconds: number;
  /**
   * Seconds between two full reads of the overlap. In between, a poll reads only until it meets an event it has
   * already applied: LookupEvents answers newest first at about 2 calls per second, so re-reading the whole
   * overlap every poll would fall behind any busy account.
   */
  sweepSeconds: number;
  /** LookupEvents calls per second per account and region. */
  callsPerSecond: number;
  /** Fault injection for tests: wait this long between producing a poll's events and committing them. */
  commitDelayMs: number;
}

export interface ListenerDeps {
  /** Every region of every account to poll, as of now (asked again every poll interval). */
  scopes: () => Promise<AwsScope[]>;
  kafka: Kafka;
  emitter: ChangeEmitter;
  checkpoints: CheckpointStore;
  cloudtrailFor: (scope: AwsScope) => CloudTrailClient;
  apigatewayFor: (scope: AwsScope) => ApiGatewayV2Client;
  settings: ListenerSettings;
  transactionalIdPrefix: string;
  logger: Logger;
  metrics: Metrics;
  interactive: boolean;
  clock?: () => number;
}

const NINETY_DAYS_MS = 90 * 24 * 3600 * 1000;
/** The oldest time LookupEvents still serves at `now` (CloudTrail keeps 90 days), with a minute to spare. */
const oldestKept = (now: number) => now - NINETY_DAYS_MS + 60_000;
/** Failed polls of a region in a row after which the health report says the listener is not doing its work. */
const FAILING_POLLS = 3;

/** A followed region's last committed checkpoint, and how many of its polls failed since its last good one. */
interface PollState {
  checkpoint: Checkpoint;
  failures: number;
}

/**
 * Polls CloudTrail per account and region, re-reads every integration an event touched, and emits the state with who
 * changed it. Each poll's events and its checkpoint go to Kafka in one transaction.
 */
export function createCloudTrailListener(deps: ListenerDeps) {
  const clock = deps.clock ?? Date.now;
  const { settings, metrics } = deps;
  const log = deps.logger.child({ component: 'cloudtrail-listener' });
  const producers = new Map<string, Producer>();

  function sourceOf(record: CloudTrailRecord, scopeId: string | null): ChangeSource {
    return {
      type: 'CLOUDTRAIL', snapshot_id: scopeId, cloudtrail_event_id: record.eventId, cloudtrail_event_name: record.eventName,
      principal_arn: record.principalArn, source_ip: record.sourceIp, user_agent: record.userAgent,
    };
  }

  /** Oldest first; within one second CloudTrail's own order (it answers newest first) decides. */
  const chronological = (a: CloudTrailRecord, b: CloudTrailRecord) => a.eventTime - b.eventTime || b.recency - a.recency;

  const resourceOf = (record: CloudTrailRecord) => (record.action.kind === 'api' ? `api:${record.action.apiId}` : `int:${record.action.apiId}/${record.action.integrationId}`);

  /**
   * What to emit for a poll's events, oldest first. The latest event of each resource is re-read: the current state
   * belongs to the last change. An earlier one of the same integration is emitted with the state its own call
   * answered, when CloudTrail kept that answer, so that its principal stays in the history; otherwise a re-read
   * cannot show it, and it is counted as collapsed.
   */
  function planPoll(scope: AwsScope, records: CloudTrailRecord[]): { record: CloudTrailRecord; reread: boolean }[] {
    const ordered = [...records].sort(chronological);
    const latest = new Map<string, CloudTrailRecord>();
    for (const record of ordered) latest.set(resourceOf(record), record);
    const plan: { record: CloudTrailRecord; reread: boolean }[] = [];
    for (const record of ordered) {
      const reread = latest.get(resourceOf(record)) === record;
      const followed = reread || record.recorded !== undefined;
      if (followed) plan.push({ record, reread });
      metrics.cloudtrailEvents.inc({ ...scopeLabels(scope), outcome: followed ? 'followed' : 'collapsed' });
    }
    return plan;
  }

  /**
   * The observed_at of a state derived from an event (the sink drops a state observed before the one it holds).
   * CloudTrail keeps whole seconds, so a call's answer is placed at the end of its second: a read made earlier in
   * that second must not make the answer look stale, and a re-read after the event is never placed before it.
   */
  const seenAfter = (record: CloudTrailRecord, readAt = 0) => Math.max(readAt, record.eventTime + 999);

  type Emission = { observations: Observation[]; scope?: Parameters<ChangeEmitter['completeSnapshot']>[0] };
  type IntegrationRecord = CloudTrailRecord & { action: { kind: 'integration' } };

  /** One integration as an event shows it: re-read, or as its own call answered; null when it is gone. */
  function integrationChange({ accountId, region }: AwsScope, record: IntegrationRecord, integration: Integration | null, observedAt: number): Emission {
    const { apiId, integrationId, op } = record.action;
    return {
      observations: [{
        account_id: accountId, region, api_id: apiId, integration_id: integrationId,
        op: integration === null ? 'DELETE' : op === 'DELETE' ? 'UPDATE' : op,
        event_time: record.eventTime, observed_at: observedAt, source: sourceOf(record, null), position: `cloudtrail:${record.eventId}`,
        api: null, after: integration === null ? null : mapIntegration(region, apiId, integration),
      }],
    };
  }

  async function readIntegration(scope: AwsScope, record: IntegrationRecord): Promise<Emission> {
    const { apiId, integrationId } = record.action;
    const client = deps.apigatewayFor(scope);
    metrics.awsCalls.inc({ ...scopeLabels(scope), operation: 'GetIntegration' });
    const observedAt = seenAfter(record, clock()); // when the read was sent; see the snapshotter
    let integration: Integration | null;
    try {
      integration = await client.send(new GetIntegrationCommand({ ApiId: apiId, IntegrationId: integrationId }));
    } catch (error) {
      if (!(error instanceof NotFoundException)) throw error;
      integration = null;
    }
    if (record.recorded && !stillAsRecorded(record.recorded, integration)) {
      // Emitting the re-read would credit this event's principal with that later change, whose own event then
      // re-reads the same state and adds nothing. This event's own answer stands for it; the later one follows.
      log.info({ ...scope, apiId, integrationId, eventId: record.eventId }, 'changed again since this event, by a change CloudTrail does not show yet: emitting the state this event left');
      return integrationChange(scope, record, record.recorded, seenAfter(record));
    }
    return integrationChange(scope, record, integration, observedAt);
  }

  /** An API-wide event: every integration of the API now, and a scope marker so the vanished ones are deleted. */
  async function readApi(scope: AwsScope, record: CloudTrailRecord & { action: { kind: 'api' } }): Promise<Emission> {
    const { accountId, region } = scope;
    const { apiId } = record.action;
    const client = deps.apigatewayFor(scope);
    const startedAt = seenAfter(record, clock()); // when the reads were sent; see the snapshotter
    const scopeId = `cloudtrail:${record.eventId}`;
    let api: ApiInfo | null = null;
    const integrations: Integration[] = [];
    try {
      metrics.awsCalls.inc({ ...scopeLabels(scope), operation: 'GetApi' });
      const found = await client.send(new GetApiCommand({ ApiId: apiId }));
      api = { name: found.Name ?? null, protocol_type: found.ProtocolType ?? null, api_endpoint: found.ApiEndpoint ?? null };
      let nextToken: string | undefined;
      do {
        metrics.awsCalls.inc({ ...scopeLabels(scope), operation: 'GetIntegrations' });
        const page = await client.send(new GetIntegrationsCommand({ ApiId: apiId, MaxResults: '500', NextToken: nextToken }));
        integrations.push(...(page.Items ?? []));
        nextToken = page.NextToken;
      } while (nextToken);
    } catch (error) {
      if (!(error instanceof NotFoundException)) throw error;
      api = null;
      integrations.length = 0;
    }
    const source = sourceOf(record, scopeId);
    return {
      observations: integrations.map((integration) => ({
        account_id: accountId, region, api_id: apiId, integration_id: integration.IntegrationId!, op: 'UPDATE',
        event_time: record.eventTime, observed_at: startedAt, source, position: scopeId, api,
        after: mapIntegration(region, apiId, integration),
      })),
      scope: {
        account_id: accountId, region, api_id: apiId, event_time: record.eventTime, observed_at: startedAt, source,
        snapshot: { snapshot_id: scopeId, started_at: startedAt, api_ids: api ? [apiId] : [], integration_count: integrations.length },
      },
    };
  }

  type Reader = ReturnType<typeof createCloudTrailReader>;

  async function pollOnce(scope: AwsScope, reader: Reader, checkpoint: Checkpoint, sweep: boolean): Promise<Checkpoint> {
    const labels = scopeLabels(scope);
    const now = clock();
    const start = Math.max(checkpoint.window_end - settings.overlapSeconds * 1000, oldestKept(now));
    const longWindow = now - start > 3600_000;
    const progress = longWindow ? createCatchUpProgress({ logger: log, interactive: deps.interactive, scope, start, end: now }) : undefined;
    // Between sweeps, stop at the first page that holds an event already applied: older ones were applied too,
    // except events CloudTrail made visible out of order, which the next sweep reads.
    const reachedApplied = (page: { EventId?: string }[]) => page.some((event) => event.EventId !== undefined && checkpoint.seen[event.EventId] !== undefined);
    const events = await reader.lookup(
      { start: new Date(start), end: new Date(now) },
      (page) => progress?.page(page.map((e) => e.EventTime?.getTime() ?? now)),
      sweep ? undefined : reachedApplied,
    );
    progress?.stop();

    const seen: Record<string, number> = { ...checkpoint.seen };
    const records: CloudTrailRecord[] = [];
    for (const [recency, event] of events.entries()) {
      if (!event.EventId || seen[event.EventId] !== undefined) {
        metrics.cloudtrailEvents.inc({ ...labels, outcome: 'duplicate' });
        continue;
      }
      seen[event.EventId] = event.EventTime?.getTime() ?? now;
      const record = classifyEvent(event, recency);
      if (record && 'unreadable' in record) {
        metrics.cloudtrailEvents.inc({ ...labels, outcome: 'unreadable' });
        log.warn({ ...scope, eventId: event.EventId, eventName: event.EventName, reason: record.unreadable },
          'CloudTrail event not readable: the next snapshot reads what it changed, without who made it');
      } else if (record) records.push(record);
      else metrics.cloudtrailEvents.inc({ ...labels, outcome: 'ignored' });
    }

    const plan = planPoll(scope, records);
    const emissions: Emission[] = [];
    for (const { record, reread } of plan) {
      if (record.action.kind === 'api') emissions.push(await readApi(scope, record as CloudTrailRecord & { action: { kind: 'api' } }));
      else {
        const integrationRecord = record as IntegrationRecord;
        emissions.push(reread ? await readIntegration(scope, integrationRecord) : integrationChange(scope, integrationRecord, record.recorded!, seenAfter(record)));
      }
    }

    const horizon = now - settings.overlapSeconds * 1000;
    const next: Checkpoint = {
      account_id: scope.accountId,
      region: scope.region,
      window_end: now,
      seen: Object.fromEntries(Object.entries(seen).filter(([, time]) => time >= horizon - 60_000)),
    };
    let transaction: Transaction | undefined;
    try {
      transaction = await producers.get(scopeKey(scope))!.transaction().catch((error: unknown) => {
        // kafkajs says "Failed to find group coordinator" both for brokers away and for a transactional id they
        // refuse (its own log line before this one says which).
        throw new DependencyError('Kafka', `could not begin a transaction as ${transactionalIdOf(scope)} (${describeError(error)}): the brokers did not answer, or refuse the principal Write on this transactional id`, error, { retriable: true });
      });
      for (const emission of emissions) {
        await deps.emitter.emit(emission.observations, transaction);
        if (emission.scope) await deps.emitter.completeSnapshot(emission.scope, transaction);
      }
      await deps.checkpoints.write(transaction, next);
      if (settings.commitDelayMs > 0) {
        log.warn({ ...scope, events: records.length, delayMs: settings.commitDelayMs }, 'events produced; committing them with the checkpoint after the configured delay');
        await sleep(settings.commitDelayMs);
      }
      await transaction.commit();
    } catch (error) {
      // A failed transaction can leave the producer fenced or with an expired epoch: start the region afresh.
      await transaction?.abort().catch(() => undefined);
      await resetProducer(scope);
      throw error;
    }
    metrics.listenerCheckpointAge.set(labels, 0);
    if (records.length > 0) log.info({ ...scope, events: records.length, collapsed: records.length - plan.length, emitted: emissions.length, windowEnd: new Date(now).toISOString() }, 'CloudTrail changes emitted');
    return next;
  }

  const transactionalIdOf = (scope: AwsScope) => `${deps.transactionalIdPrefix}.${scope.accountId}.${scope.region}`;

  async function connectProducer(scope: AwsScope): Promise<void> {
    const producer = createIdempotentProducer(deps.kafka, { transactionalId: transactionalIdOf(scope) });
    await producer.connect();
    producers.set(scopeKey(scope), producer);
  }

  async function resetProducer(scope: AwsScope): Promise<void> {
    await producers.get(scopeKey(scope))?.disconnect().catch(() => undefined);
    await connectProducer(scope).catch((error: unknown) => log.warn({ ...scope, err: describeError(error) }, 'reconnecting the transactional producer failed; the next poll retries'));
  }

  /** The regions followed, each with what stops it, its loop, and how its polls go. */
  const following = new Map<string, { scope: AwsScope; stop: AbortController; done: Promise<void>; polls: PollState }>();
  // Whether the regions read at start are followed: until then, connecting their producers and loading checkpoints.
  let started = false;

  async function runScope(scope: AwsScope, polls: PollState, signal: AbortSignal): Promise<void> {
    // One token bucket per account and region, kept across polls: LookupEvents allows about 2 calls per second.
    const reader = createCloudTrailReader({ client: deps.cloudtrailFor(scope), scope, callsPerSecond: settings.callsPerSecond, logger: deps.logger, metrics, signal });
    let lastSweep = 0;
    while (!signal.aborted) {
      try {
        const sweep = clock() - lastSweep >= settings.sweepSeconds * 1000;
        polls.checkpoint = await pollOnce(scope, reader, polls.checkpoint, sweep);
        if (sweep) lastSweep = clock();
        polls.failures = 0;
        await sleep(settings.pollSeconds * 1000, signal);
      } catch (error) {
        polls.failures++;
        metrics.listenerPollFailures.inc(scopeLabels(scope));
        const delayMs = Math.min(300_000, Math.max(1000, settings.pollSeconds * 1000) * 2 ** Math.min(polls.failures - 1, 10));
        log.error({ ...scope, failures: polls.failures, delayMs, err: describeError(error) }, 'a poll of this region failed; retrying it with backoff, other regions go on');
        await sleep(delayMs, signal);
      }
      metrics.listenerCheckpointAge.set(scopeLabels(scope), (clock() - polls.checkpoint.window_end) / 1000);
    }
  }

  /**
   * Follows the regions of `scopes` not followed yet, each from its checkpoint, and stops following the ones no
   * longer among them (an account that left the organization): its loop ends after its poll, and its producer goes.
   */
  async function follow(scopes: AwsScope[], signal: AbortSignal): Promise<void> {
    const wanted = new Set(scopes.map(scopeKey));
    for (const [key, { scope, stop, done }] of following) {
      if (wanted.has(key)) continue;
      stop.abort();
      await done;
      following.delete(key);
      await producers.get(key)?.disconnect().catch(() => undefined);
      producers.delete(key);
      log.info({ ...scope }, 'no longer following this region: its account is no longer read');
    }
    const added = scopes.filter((scope) => !following.has(scopeKey(scope)));
    if (added.length === 0) return;
    // One transactional producer per account and region (kept from an earlier try that failed after connecting it);
    // its first transaction fences a dead instance's producer of the same id and aborts what that left open.
    for (const scope of added) if (!producers.has(scopeKey(scope))) await connectProducer(scope);
    const loaded = await deps.checkpoints.loadAll();
    for (const scope of added) {
      const found = deps.checkpoints.get(loaded, scope.accountId, scope.region);
      const checkpoint = found ?? { account_id: scope.accountId, region: scope.region, window_end: clock() - settings.lookbackHours * 3600_000, seen: {} };
      log.info({ ...scope, from: new Date(checkpoint.window_end).toISOString(), resumed: Boolean(found) }, found ? 'resuming from checkpoint' : 'no checkpoint: looking back');
      const kept = oldestKept(clock());
      if (found && found.window_end < kept) {
        log.warn({ ...scope, from: new Date(found.window_end).toISOString(), to: new Date(kept).toISOString() },
          'the checkpoint is older than CloudTrail keeps events (90 days): who made the changes between these times is lost; the next snapshot reads their state');
      }
      const stop = new AbortController();
      const polls: PollState = { checkpoint, failures: 0 };
      following.set(scopeKey(scope), { scope, stop, polls, done: runScope(scope, polls, AbortSignal.any([signal, stop.signal])) });
    }
  }

  return {
    /**
     * Polls every region of every account until the signal aborts; a failing one is retried with backoff while the
     * others go on. The accounts are asked for again every poll interval: regions of an account that came are
     * followed from then on, those of one that went are not.
     */
    async run(signal: AbortSignal): Promise<void> {
      await deps.checkpoints.ensureTopic();
      await follow(await deps.scopes(), signal);
      started = true;
      while (!signal.aborted) {
        await sleep(settings.pollSeconds * 1000, signal);
        if (signal.aborted) break;
        await deps.scopes().then((scopes) => follow(scopes, signal)).catch((error: unknown) =>
          log.warn({ err: describeError(error) }, 'could not update the accounts followed; the next poll interval tries again'));
      }
      await Promise.all([...following.values()].map(({ done }) => done));
      following.clear();
    },

    /**
     * Not ok until the regions read at start are followed, nor while a region's last FAILING_POLLS polls or more
     * failed (say its role lost cloudtrail:LookupEvents): that region's changes are not followed. Each region with
     * its failed polls in a row and its checkpoint's age.
     */
    health(): ServiceHealth {
      const regions = [...following.values()].map(({ scope, polls }) => ({
        account_id: scope.accountId, region: scope.region, failed_polls_in_a_row: polls.failures,
        checkpoint_age_seconds: Math.round((clock() - polls.checkpoint.window_end) / 1000),
      }));
      return { ok: started && regions.every((r) => r.failed_polls_in_a_row < FAILING_POLLS), started, regions };
    },

    /** Makes the checkpoint topic again, through `via`, when it was deleted (not among `existing`); returns the topics it made. */
    ensureTopic: (via: Admin, existing: string[]) => deps.checkpoints.ensureTopic(via, existing),

    async stop(): Promise<void> {
      for (const producer of producers.values()) await producer.disconnect();
      producers.clear();
    },
  };
}

export type CloudTrailListener = ReturnType<typeof createCloudTrailListener>;
