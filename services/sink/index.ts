import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { ChangeCodec } from '../shared/codec.js';
import { PoisonMessageError, describeError, isRetriable } from '../shared/errors.js';
import { apiArn, apiUuid, sha256, canonicalJson, type IntegrationChange } from '../shared/integration-model.js';
import { createIdempotentProducer, dlqTopic } from '../shared/kafka.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import { createRetry, sleep } from '../shared/retry.js';
import { applyChange, chTime, type AppliedState, type CurrentRow, type HistoryRow } from './change-applier.js';
import type { ApiRow, StateStore } from './state-store.js';

interface PendingWrites {
  history: HistoryRow[];
  current: CurrentRow[];
  apis: ApiRow[];
}

export interface SinkDeps {
  kafka: Kafka;
  codec: ChangeCodec;
  store: StateStore;
  topic: string;
  groupId: string;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Batches of different partitions are applied concurrently: keys never cross partitions, and while one batch
 * waits for ClickHouse (native threads) the next is decoded and applied on the JS thread.
 */
const PARTITIONS_IN_FLIGHT = 3;


/**
 * Consumes change events in batches and materializes them in ClickHouse. Offsets are committed only after
 * ClickHouse has the rows; a message that cannot be decoded or applied goes to the dead-letter topic.
 */
export function createSink(deps: SinkDeps) {
  const { kafka, codec, store, topic, metrics } = deps;
  const log = deps.logger.child({ component: 'sink' });
  // What was applied per integration ARN, for the partitions this instance owns; cleared on every rebalance.
  const applied = new Map<string, AppliedState>();
  const apiHashes = new Map<string, string>();
  // What each complete read (snapshot or API-scoped CloudTrail read) saw, per partition, until its marker; and
  // when the first message this instance applied from each partition since it joined was produced (the Kafka
  // timestamp). Every event of a read is produced after the read started, and a partition is consumed in order:
  // if that first message was produced before the read started, this instance saw the whole read; otherwise (it
  // joined in the middle) the read's marker deletes nothing and the next read catches up. (Observation times
  // cannot decide this: a CloudTrail re-read is observed before it is produced, so it can land after a
  // snapshot's events with an earlier observation time.) Producer and reader share a clock: the read's start
  // and its events' timestamps come from the same process.
  const seenByRead = new Map<string, Set<string>>();
  const firstProducedAt = new Map<number, number>();
  // One snapshot reads every region under one id, and each region has its own marker: the seen-set is per
  // (partition, read, account, region), or the first region's marker would take the others' set with it.
  const readKey = (partition: number, readId: string, change: IntegrationChange) =>
    [partition, readId, change.account_id, change.region].join('\u0000');
  const writeRetry = createRetry({
    retries: 12,
    maxDelayMs: 15_000,
    onRetry: (error, attempt, delayMs) => log.warn({ attempt, delayMs, err: describeError(error) }, 'ClickHouse write failed; retrying'),
  });
  let consumer: Consumer | undefined;
  let dlqProducer: Producer | undefined;
  let admin: Admin | undefined;

  async function deadLetter(message: KafkaMessage, partition: number, error: PoisonMessageError): Promise<void> {
    await dlqProducer!.send({
      topic: dlqTopic(topic),
      acks: -1,
      messages: [{
        key: message.key,
        value: message.value,
        headers: {
          ...message.headers,
          'dlq.reason': error.reason,
          'dlq.error': error.message.slice(0, 1000),
          'dlq.topic': topic,
          'dlq.partition': String(partition),
          'dlq.offset': message.offset,
        },
      }],
    });
    metrics.deadLettered.inc({ reason: error.reason });
    log.warn({ partition, offset: message.offset, reason: error.reason, err: error.message }, 'message sent to the dead-letter topic');
  }

  const apiHash = (api: { name: string | null; protocol_type: string | null; api_endpoint: string | null }) =>
    sha256(canonicalJson({ name: api.name, protocol_type: api.protocol_type, api_endpoint: api.api_endpoint }));

  // Which keys the tables hold: read once per group assignment (with the API rows), and grown with every key
  // this instance writes, never shrunk (a key written while the read ran must not look new). A key the sink sees
  // for the first time needs no look-up, which on a growing inventory is most of them.
  const inTables = new Set<string>();
  let tablesRead: Promise<void> | undefined;
  function readTables(): Promise<void> {
    return (async () => {
      const [arns, apis] = await Promise.all([store.storedArns(), store.apiInfo()]);
      for (const arn of arns) inTables.add(arn);
      for (const api of apis) apiHashes.set(api.api_id, apiHash(api));
      log.info({ integrations: arns.size, apis: apis.length }, 'read which integrations the tables hold');
    })();
  }

  async function ensureLoaded(keys: { account_id: string; region: string; arn: string }[], pending: PendingWrites): Promise<void> {
    await (tablesRead ??= readTables());
    const missing = new Map<string, { scope: { account_id: string; region: string }; arns: Set<string> }>();
    for (const { account_id, region, arn } of keys) {
      if (applied.has(arn) || !inTables.has(arn)) continue;
      const scopeKey = `${account_id}/${region}`;
      if (!missing.has(scopeKey)) missing.set(scopeKey, { scope: { account_id, region }, arns: new Set() });
      missing.get(scopeKey)!.arns.add(arn);
    }
    const states = [];
    const repairs = [];
    for (const { scope, arns } of missing.values()) {
      const loaded = await store.load(scope, [...arns]);
      states.push(...loaded.states);
      repairs.push(...loaded.repairs);
    }
    for (const state of states) applied.set(state.arn, state);
    if (repairs.length > 0) log.warn({ count: repairs.length }, 'current state behind history after an interrupted write; repairing');
    pending.current.push(...repairs);
  }

  function apply(change: IntegrationChange, partition: number, offset: number, pending: PendingWrites): void {
    const readId = change.source.snapshot_id;
    if (readId && change.op !== 'DELETE') {
      const key = readKey(partition, readId, change);
      if (!seenByRead.has(key)) seenByRead.set(key, new Set());
      seenByRead.get(key)!.add(change.arn);
    }
    const result = applyChange(applied.get(change.arn), change, { partition, offset });
    if (!result) {
      metrics.sinkMessages.inc({ outcome: 'unchanged' });
      return;
    }
    applied.set(change.arn, result.state);
    if (result.current) {
      pending.current.push(result.current);
      inTables.add(change.arn);
    }
    if (result.history) {
      pending.history.push(result.history);
      metrics.historyRows.inc({ operation: String(result.history.operation) });
    }
    metrics.sinkMessages.inc({ outcome: result.history ? 'changed' : 'reread' });
    if (change.api) {
      const uuid = apiUuid(change.region, change.api_id);
      const hash = apiHash(change.api);
      if (apiHashes.get(uuid) !== hash) {
        apiHashes.set(uuid, hash);
        pending.apis.push({
          api_id: uuid, account_id: change.account_id, region: change.region, aws_api_id: change.api_id,
          arn: apiArn(change.region, change.api_id), ...change.api, version: change.observed_at, is_deleted: 0,
          observed_at: chTime(change.observed_at),
        });
      }
    }
  }

  async function flush(pending: PendingWrites, touched: string[]): Promise<void> {
    if (pending.history.length + pending.current.length + pending.apis.length === 0) return;
    try {
      await writeRetry(() => store.write(pending));
    } catch (error) {
      // What this process believed applied may or may not be in ClickHouse: forget it and look it up on redelivery.
      for (const arn of touched) {
        applied.delete(arn);
        inTables.add(arn);
      }
      throw error;
    }
    pending.history = [];
    pending.current = [];
    pending.apis = [];
  }

  /**
   * A complete read of a scope (an account and region, or one API of it) finished: delete what this partition
   * holds of that scope and the read did not see.
   */
  async function completeSnapshot(change: IntegrationChange, partition: number, offset: number, pending: PendingWrites, touched: string[]): Promise<void> {
    const snapshot = change.snapshot!;
    await flush(pending, touched);
    const scope = { account_id: change.account_id, region: change.region, api_id: change.api_id };
    const seen = seenByRead.get(readKey(partition, snapshot.snapshot_id, change)) ?? new Set<string>();
    seenByRead.delete(readKey(partition, snapshot.snapshot_id, change));
    const first = firstProducedAt.get(partition) ?? Infinity;
    if (first >= snapshot.started_at) {
      metrics.sinkMessages.inc({ outcome: 'marker-skipped' });
      log.info({ partition, readId: snapshot.snapshot_id }, 'this instance did not see the whole read in this partition (it started in the middle); its deletions wait for the next one');
      return;
    }
    const unseen = (await store.liveBeforeMarker({ ...scope, partition, offset, started_at: snapshot.started_at })).filter((arn) => !seen.has(arn));
    await ensureLoaded(unseen.map((arn) => ({ ...scope, arn })), pending);
    for (const arn of unseen) {
      const state = applied.get(arn)!;
      apply({
        ...change, op: 'DELETE', arn, api_id: state.aws_api_id, integration_id: state.integration_id, after: null, snapshot: null,
      }, partition, offset, pending);
      touched.push(arn);
    }
    // The API table is global, not per partition: one partition's marker is enough to retire vanished APIs.
    if (partition === 0) {
      for (const api of await store.liveApisNotIn({ ...scope, api_ids: snapshot.api_ids })) {
        apiHashes.delete(api.api_id);
        pending.apis.push({ ...api, version: change.observed_at, is_deleted: 1, observed_at: chTime(change.observed_at) });
      }
    }
    if (unseen.length > 0) log.info({ region: change.region, partition, snapshotId: snapshot.snapshot_id, deleted: unseen.length }, 'deleted integrations the snapshot no longer saw');
  }

  async function handleBatch({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const pending: PendingWrites = { history: [], current: [], apis: [] };
    const decoded: { message: KafkaMessage; change: IntegrationChange }[] = [];
    for (const message of batch.messages) {
      try {
        const result = codec.decode(message.key, message.value);
        const { value } = result instanceof Promise ? await result : result;
        if (value.op !== 'SNAPSHOT_COMPLETE' && value.op !== 'DELETE' && !value.after) {
          throw new PoisonMessageError('invalid', `${value.op} event ${value.event_id} has no after-image`);
        }
        if (value.op === 'SNAPSHOT_COMPLETE' && !value.snapshot) throw new PoisonMessageError('invalid', `marker ${value.event_id} has no snapshot scope`);
        decoded.push({ message, change: value });
      } catch (error) {
        if (!(error instanceof PoisonMessageError)) throw error;
        await deadLetter(message, batch.partition, error);
        metrics.sinkMessages.inc({ outcome: 'dead-lettered' });
      }
    }
    const touched = decoded.map(({ change }) => change.arn);
    await ensureLoaded(decoded.filter(({ change }) => change.op !== 'SNAPSHOT_COMPLETE').map(({ change }) => change), pending);
    for (const { message, change } of decoded) {
      if (!isRunning() || isStale()) break;
      const offset = Number(message.offset);
      if (!firstProducedAt.has(batch.partition)) firstProducedAt.set(batch.partition, Number(message.timestamp));
      if (change.op === 'SNAPSHOT_COMPLETE') await completeSnapshot(change, batch.partition, offset, pending, touched);
      else apply(change, batch.partition, offset, pending);
    }
    if (!isRunning() || isStale()) return;
    await flush(pending, touched);
    const last = batch.lastOffset();
    await consumer!.commitOffsets([{ topic, partition: batch.partition, offset: String(Number(last) + 1) }]);
    resolveOffset(last);
    metrics.sinkLag.set({ partition: String(batch.partition) }, Number(last));
    await heartbeat();
  }

  return {
    async start(): Promise<void> {
      admin = kafka.admin();
      await admin.connect();
      dlqProducer = createIdempotentProducer(kafka);
      await dlqProducer.connect();
      consumer = kafka.consumer({
        groupId: deps.groupId,
        readUncommitted: false,
        // Bounded fetches keep the sink's memory flat: at most PARTITIONS_IN_FLIGHT batches of 4 MiB are decoded at once.
        maxBytesPerPartition: 4 * 1024 * 1024,
        maxBytes: 16 * 1024 * 1024,
        retry: {
          retries: 10,
          restartOnFailure: async (error) => {
            log.error({ err: describeError(error), retriable: isRetriable(error) }, 'sink consumer failed; restarting from the last committed offsets');
            return true;
          },
        },
      });
      // A fetch that holds only transaction markers never reaches eachBatch; commit past it so the group's
      // offsets reach the end of the partition.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (payload.batchSize !== 0) return;
        consumer!.commitOffsets([{ topic, partition: payload.partition, offset: String(Number(payload.lastOffset) + 1) }])
          .catch((error: unknown) => log.warn({ err: describeError(error) }, 'committing past transaction markers failed; will retry on the next batch'));
      });
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        applied.clear();
        tablesRead = readTables();
        seenByRead.clear();
        firstProducedAt.clear();
        log.info({ memberId: payload.memberId, assignment: payload.memberAssignment }, 'sink joined the consumer group');
      });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: PARTITIONS_IN_FLIGHT, eachBatch: handleBatch });
      log.info({ topic, groupId: deps.groupId }, 'sink started');
    },

    /** True when the group's committed offsets reach the end of every partition. */
    async caughtUp(): Promise<boolean> {
      const [ends, committed] = await Promise.all([
        admin!.fetchTopicOffsets(topic),
        admin!.fetchOffsets({ groupId: deps.groupId, topics: [topic] }),
      ]);
      const done = new Map(committed[0]!.partitions.map((p) => [p.partition, Number(p.offset)]));
      return ends.every((end) => Number(end.high) === 0 || (done.get(end.partition) ?? -1) >= Number(end.high));
    },

    async waitForCatchUp(timeoutMs = 120_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!(await this.caughtUp())) {
        if (Date.now() > deadline) throw new Error(`sink did not catch up with ${topic} within ${timeoutMs} ms`);
        await sleep(200);
      }
    },

    async stop(): Promise<void> {
      await consumer?.disconnect();
      await dlqProducer?.disconnect();
      await admin?.disconnect();
      log.info('sink stopped');
    },
  };
}

export type Sink = ReturnType<typeof createSink>;
