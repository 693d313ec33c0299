import kafkajs, { type Admin, type Consumer, type EachBatchPayload, type Kafka, type KafkaMessage, type Producer } from 'kafkajs';
import type { ChangeCodec, EncodedImage } from '../shared/codec.js';
import { createConsumerRestarts } from '../shared/consumer-restarts.js';
import { ApigwError, PoisonMessageError, describeError } from '../shared/errors.js';
import type { ServiceHealth } from '../shared/health.js';
import type { IntegrationChange } from '../shared/integration-model.js';
import { createIdempotentProducer, dlqTopic, groupPositions, topicsSettings } from '../shared/kafka.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import { backoffDelay, createRetry, sleep } from '../shared/retry.js';
import { checkApplicable } from './change-applier.js';
import { createHeldState } from './held-state.js';
import { createSnapshotCompletion } from './snapshot-completion.js';
import type { StateStore } from './state-store.js';
import { ReadTracker } from './read-tracker.js';
import { blockSize, emptyBlock } from './row-block.js';
import { deadLetterHeaders, logValueOmitted, sendDeadLetters } from './dead-letters.js';
import { ExpiredOffsets } from './expired-offsets.js';
import { createOffsetCommits } from './offset-commits.js';
import { createWriteBatcher } from './write-batcher.js';

export interface SinkDeps {
  /**
   * This process is the only writer of the tables (the embedded engine, whose data directory one process holds).
   * A batch then ends as soon as its rows are handed to the writer, and its offsets are committed when they are
   * written: decoding the next fetch overlaps the last writes of this one. Otherwise (a server that other sink
   * instances may share) a batch ends only after its rows are written, so that a partition's next owner never
   * reads state that a late write of its previous owner then changes.
   */
  soleWriter: boolean;
  /** Retries of a failing write before the sink starts over from its committed offsets. */
  writeRetries: number;
  /** The most integrations whose state the sink holds in memory (see HeldStateDeps.limit). */
  heldLimit: number;
  kafka: Kafka;
  codec: ChangeCodec;
  store: StateStore;
  topic: string;
  groupId: string;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Batches of different partitions are applied concurrently (keys never cross partitions) and their rows share
 * ClickHouse writes: while one block is written (native threads), the next is decoded and applied on the JS thread.
 */
const PARTITIONS_IN_FLIGHT = 6;
/**
 * A batch that comes after this long without one asks first whether the group's committed offsets are gone (see
 * OffsetCommits' committedOffsetsGone): a topic deleted and made again while the consumer was away (stalled, or between two
 * fetches), not noticing it, or a sink that stood still since it joined. A fetch waits at most 500 ms for new events,
 * so this holds for the first batch after every quiet spell; under load batches follow each other closely and none
 * asks (each ask costs ~1 ms of the JS thread).
 */
const QUIET_MS = 500;
/**
 * The wait before each start-over after a failure, in a row: from 0.5 s up to 10 s, well inside the group's session
 * timeout (30 s), since a batch that starts over waits it out.
 */
const START_OVER_BACKOFF = { initialDelayMs: 500, maxDelayMs: 10_000 };
/** Messages applied between two looks at the engine: a batch's first rows are being written while it goes on. */
const CHUNK = 200;
/** Rows a sole writer may hold in memory for its next write before its batches wait for the current one. */
const MAX_GATHERED_ROWS = 40_000;
/**
 * A sole writer's blocks: at least this many rows, or, below that, one write per this many milliseconds. Fewer,
 * larger inserts cost the engine less CPU: each is a part to write and later to merge (300k events: blocks of 5,000
 * rows 12.0 CPU-s for the sink, 10,000 11.0 s). Following a live feed of 4,000 events/s, writing whatever gathered
 * at once cost 0.125-0.145 CPU-s per 1,000 events; one write per 200 ms 0.097-0.102, per 500 ms 0.070-0.073 (one per
 * second saved nothing more in a scratch run; bench/sink-live.ts).
 */
export const SOLE_WRITER_BLOCK = { minRows: 10_000, lingerMs: 500 };

interface Decoded {
  message: KafkaMessage;
  change: IntegrationChange;
  image: EncodedImage | null;
}

const yieldToEngine = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A topic's `retention.ms` in hours; 'forever' for -1. */
function hoursOf(retentionMs: string | undefined): number | 'forever' | undefined {
  const ms = Number(retentionMs);
  if (!Number.isFinite(ms)) return undefined;
  return ms < 0 ? 'forever' : Math.round(ms / 36e5);
}

/**
 * Consumes change events in batches and materializes them in ClickHouse. Offsets are committed only after
 * ClickHouse has the rows; a message that cannot be decoded or applied goes to the dead-letter topic.
 */
export function createSink(deps: SinkDeps) {
  const { kafka, codec, store, topic, metrics } = deps;
  const log = deps.logger.child({ component: 'sink' });
  // What each complete read saw, per partition, until its marker (see ReadTracker).
  const reads = new ReadTracker();
  // Messages behind each owned partition's end as of its last batch (unknown until then, since joining the group).
  const lagByPartition = new Map<number, number>();
  const noteLag = (partition: number, lag: number) => {
    lagByPartition.set(partition, lag);
    metrics.sinkLag.set({ partition: String(partition) }, lag);
  };
  // Aborted once stop() began.
  const stopping = new AbortController();
  // A retry waiting out its backoff when the sink stops ends then: what it was for is not committed, and stopping
  // does not wait out the rest of up to minutes of retries.
  const clickHouseRetry = (what: 'write' | 'read') => createRetry({
    retries: deps.writeRetries,
    maxDelayMs: 15_000,
    signal: stopping.signal,
    onRetry: (error, attempt, delayMs) => {
      metrics.clickHouseRetries.inc({ operation: what });
      log.warn({ attempt, delayMs, err: describeError(error) }, `ClickHouse ${what} failed; retrying`);
    },
  });
  const writeRetry = clickHouseRetry('write');
  // Start-overs after a failure since the last write that did not fail (see startOver).
  let startOversInRow = 0;
  const readRetry = clickHouseRetry('read');
  // Set when a read of the tables failed after its retries; the sink starts over, as after a failed write.
  let readFailure: unknown;

  /**
   * A read of the tables, retried; when it fails for good, the sink starts over from its committed offsets (see
   * startOver). Not the batch again: a batch fails after it changed what the sink holds in memory (a marker's
   * deletions), and applied again, it would find them made and write nothing.
   */
  async function readOrStartOver<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await readRetry(read);
    } catch (error) {
      metrics.sinkReadFailures.inc();
      log.error({ err: describeError(error) }, 'ClickHouse read failed after its retries; starting over from the committed offsets');
      readFailure = error;
      throw startingOver('a ClickHouse read failed');
    }
  }

  let consumer: Consumer | undefined;
  let dlqProducer: Producer | undefined;
  let admin: Admin | undefined;
  // What the sink holds of the tables for the partitions it owns; cleared on every rebalance.
  const held = createHeldState({ store, reads, read: readOrStartOver, log, limit: deps.heldLimit });
  metrics.sinkIntegrationsHeldLimit.set(deps.heldLimit);
  let heldLimitReached = false;
  // Partitions whose chunk is between the look-up of its keys and its last change: nothing of theirs is let go then.
  const chunking = new Set<number>();
  // Partitions this instance applied events of.
  const appliedPartitions = new Set<number>();
  /**
   * What memory lets go of in `partition` (see HeldState.trim), counted: before each of its chunks, and once a write
   * ends (its states may be let go of now, and the partition may get no more events for a while).
   */
  function trimHeld(partition: number): void {
    if (chunking.has(partition)) return;
    const released = held.trim(partition);
    if (released === 0) return;
    metrics.sinkIntegrationsLetGo.inc(released);
    if (heldLimitReached) return;
    heldLimitReached = true;
    log.warn({ limit: deps.heldLimit }, 'the sink holds as many integrations as APIGW_SINK_HELD_INTEGRATIONS allows: it lets go of the ones held longest and reads them back from ClickHouse when their events come, which is slower; raise it (and the heap) to hold the whole inventory');
  }
  const completeSnapshot = createSnapshotCompletion({
    held, reads, store, codec, topic, admin: () => admin!, read: readOrStartOver, write: writeRetry, metrics, log,
  });

  const valueOmitted = logValueOmitted(log, dlqTopic(topic));
  async function deadLetter(message: KafkaMessage, partition: number, error: PoisonMessageError): Promise<void> {
    const letter = { key: message.key, value: message.value, headers: deadLetterHeaders(message, error, { topic, partition }) };
    await sendDeadLetters(dlqProducer!, dlqTopic(topic), [letter], valueOmitted);
    metrics.deadLettered.inc({ reason: error.reason });
    log.warn({ partition, offset: message.offset, reason: error.reason, err: error.message }, 'message sent to the dead-letter topic');
  }

  const batcher = createWriteBatcher(async (block) => {
    const started = performance.now();
    await writeRetry(() => store.write(block)).catch((error: unknown) => {
      metrics.sinkWriteFailures.inc();
      log.error({ err: describeError(error), rows: blockSize(block) }, 'ClickHouse write failed after its retries; nothing of it is committed');
      startOverWhenQuiet();
      throw error;
    });
    startOversInRow = 0;
    metrics.sinkWriteSeconds.observe((performance.now() - started) / 1000);
    for (const [operation, count] of block.historyOperations) metrics.historyRows.inc({ operation }, count);
    held.written(block.states);
    for (const partition of appliedPartitions) trimHeld(partition);
    metrics.sinkIntegrationsHeld.set(held.size);
    log.debug({ history: block.history.count, current: block.current.count, apis: block.apis.count, ms: Math.round(performance.now() - started) }, 'wrote a block');
  }, deps.soleWriter ? SOLE_WRITER_BLOCK : {});
  let activeBatches = 0;
  // consumer.run() has returned: stop() pauses and drains it before leaving.
  let running = false;
  // Joined to its group, and not crashed since: what the health report calls consuming.
  let inGroup = false;
  // Rejected when the consumer stopped for good: kafkajs restarts it after any error it retries, not after others.
  let stoppedForGood!: (error: Error) => void;
  // Set with it: a consumer refused its group stops while consumer.run() is still starting it.
  let stoppedError: Error | undefined;
  const failed = new Promise<never>((_, reject) => {
    stoppedForGood = reject;
  });
  failed.catch(() => undefined);

  /**
   * Forgets what was applied in memory: it is read again from ClickHouse for the keys seen next, once every write
   * still running has settled.
   */
  const forgetApplied = () => held.forget(batcher.idle().then(() => batcher.reset()));


  /** Decodes messages; one that is not a valid change goes to the dead-letter topic. */
  async function decodeAll(messages: KafkaMessage[], partition: number): Promise<Decoded[]> {
    const decoded: Decoded[] = [];
    for (const message of messages) {
      try {
        const result = codec.decodeChange(message.key, message.value, held.previousImage);
        const { value, image } = result instanceof Promise ? await result : result;
        checkApplicable(value);
        decoded.push({ message, change: value, image });
      } catch (error) {
        if (!(error instanceof PoisonMessageError)) throw error;
        await deadLetter(message, partition, error);
        metrics.sinkMessages.inc({ outcome: 'dead-lettered' });
      }
    }
    return decoded;
  }

  const commits = createOffsetCommits({
    topic, groupId: deps.groupId, admin: () => admin!, consumer: () => consumer!, metrics, log,
    onCommitted: (partition, offset) => reads.committed(partition, offset),
  });
  /**
   * Offsets of a partition deleted by the topic's retention before the sink wrote what they held: their changes are
   * not in history; the next snapshot brings the current state back, deletions included. kafkajs goes on from the
   * partition's first offset without a word of what that means.
   */
  const expired = new ExpiredOffsets((partition, range) => {
    metrics.sinkOffsetsExpired.inc({ partition: String(partition) }, range.to - range.from);
    log.warn({ topic, partition, fromOffset: range.from, toOffset: range.to - 1, offsets: range.to - range.from },
      'the topic\'s retention deleted events the sink had not written: their changes are missing from history; the next snapshot brings the current state back');
  });
  /** A write or a read failed for good, or the topic was made again: the next batch starts over (see startOver). */
  const startOverPending = () => batcher.failure !== undefined || readFailure !== undefined || commits.topicRemade;
  // When the last batch began, and the last ask whether the committed offsets are gone, which later batches await.
  let lastBatchAt = 0;
  let offsetsChecked: Promise<unknown> = Promise.resolve();

  const partitionOffsets = () => groupPositions(admin!, deps.groupId, topic);

  /** As the sink starts: the group's committed offsets below their partition's first (kafkajs commits its reset at its first fetch). */
  async function noteExpiredOffsets(): Promise<void> {
    try {
      for (const { partition, committed, low } of await partitionOffsets()) {
        expired.note(partition, committed, low);
      }
    } catch (error) {
      log.debug({ err: describeError(error) }, 'could not compare the group\'s committed offsets with the partitions\' first');
    }
  }

  /**
   * Both topics' retention, for the start-up line, read in one request. The topic's: how long the sink may be away,
   * or unable to write, before changes are lost (see `expired`); a compacted topic keeps only each key's last event,
   * a loss that needs no time at all (noted in `expired`). The dead-letter topic's: a warning when it has one, since it
   * deletes dead letters whether they were redriven or not (apigw-stream makes the topic with none).
   */
  async function readRetention(): Promise<{ retentionHours?: number | 'forever'; deadLetterRetentionHours?: number | 'forever' }> {
    const deadLetterTopic = dlqTopic(topic);
    try {
      const settings = await topicsSettings(admin!, [topic, deadLetterTopic], ['retention.ms', 'cleanup.policy']);
      const policy = settings.get(topic)?.get('cleanup.policy') ?? '';
      expired.compacted = policy.includes('compact');
      if (expired.compacted) {
        log.warn({ topic, cleanupPolicy: policy },
          'the topic is compacted: it keeps only the last event of each integration, so a sink behind it misses the changes between, and history with them; apigw-stream makes its topic with cleanup.policy=delete');
      }
      const retentionHours = hoursOf(settings.get(topic)?.get('retention.ms'));
      const deadLetterRetentionHours = hoursOf(settings.get(deadLetterTopic)?.get('retention.ms'));
      if (typeof deadLetterRetentionHours === 'number') {
        log.warn({ deadLetterTopic, retentionHours: deadLetterRetentionHours },
          `the dead-letter topic deletes dead letters after ${deadLetterRetentionHours} hours, redriven or not: redrive within that time, or set its retention.ms to -1 (apigw-stream makes it so)`);
      }
      return {
        ...(retentionHours === undefined ? {} : { retentionHours }),
        ...(deadLetterRetentionHours === undefined ? {} : { deadLetterRetentionHours }),
      };
    } catch (error) {
      log.debug({ err: describeError(error) }, 'could not read the topics\' settings');
      return {};
    }
  }

  /**
   * How far behind its end each owned partition starts, for the partitions no batch has reported on yet: a partition
   * with nothing new never gets a batch, and must not keep the others from counting as caught up.
   */
  async function measureLags(): Promise<void> {
    try {
      for (const { partition, committed, low, high } of await partitionOffsets()) {
        if (lagByPartition.get(partition) === Infinity) noteLag(partition, high - Math.max(committed, low));
        if (lagByPartition.has(partition) && committed >= 0) commits.foundCommitted(partition, committed);
      }
    } catch (error) {
      log.debug({ err: describeError(error) }, 'could not read the partitions\' ends; caught up is known once every partition has had a batch');
    }
  }

  /**
   * After a write or a read of the tables failed for good: once every write has settled, forget what was applied in
   * memory and consume again from the committed offsets of the partitions this instance works on. After its topic was made again
   * (commits.topicRemade): from the start of each partition it owns, forgetting its reads and the offsets it meant to commit.
   */
  async function startOver(): Promise<void> {
    await batcher.idle();
    if (commits.topicRemade) {
      await commits.dropUncommitted();
      for (const { partition, low } of await partitionOffsets()) {
        if (lagByPartition.has(partition)) consumer!.seek({ topic, partition, offset: String(low) });
      }
      reads.clear();
      expired.clear();
      commits.startAfresh();
    } else {
      // Later each time in a row (a table that is gone stays gone until someone brings it back): the sink would
      // otherwise read, fail and start over again as fast as its batches come.
      await sleep(backoffDelay(startOversInRow++, START_OVER_BACKOFF), stopping.signal);
      log.warn({ err: describeError(batcher.failure ?? readFailure) }, `resuming after a failed ${batcher.failure === undefined ? 'read' : 'write'}: consuming again from the committed offsets`);
      for (const { partition, committed, low } of await partitionOffsets()) {
        if (!reads.hasConsumed(partition)) continue;
        // What it last wrote, below the partition's first now: the retention overtook a sink that could not write.
        expired.note(partition, commits.lastCommitted(partition) ?? committed, low);
        consumer!.seek({ topic, partition, offset: String(Math.max(committed, low)) });
      }
    }
    // Only now that every batch fetched before is stale does the failure clear (see forgetApplied): a batch retried
    // earlier would apply events past the committed offsets before the ones it skipped.
    readFailure = undefined;
    forgetApplied();
  }

  // A start-over begun by startOverWhenQuiet, which a batch that comes meanwhile waits out.
  let startingOverAlone: Promise<void> | undefined;

  /**
   * A sole writer's batches end once their rows are handed over, so a write that fails for good may find no batch
   * left to notice it (the next one starts over): with nothing more arriving, the sink would hold its failure until
   * something did. Once no batch has run for QUIET_MS, it starts over by itself.
   */
  function startOverWhenQuiet(): void {
    const timer = setInterval(() => {
      if (stopping.signal.aborted || batcher.failure === undefined) {
        clearInterval(timer);
        return;
      }
      if (activeBatches > 0 || startingOverAlone || Date.now() - lastBatchAt < QUIET_MS) return;
      clearInterval(timer);
      startingOverAlone = startOver()
        .catch((error: unknown) => {
          log.warn({ err: describeError(error) }, 'starting over failed (the broker away?); trying again');
          startOverWhenQuiet();
        })
        .finally(() => (startingOverAlone = undefined));
    }, QUIET_MS);
    timer.unref();
  }

  /**
   * What a batch throws when the sink starts over (see startOver): a KafkaJSError, which kafkajs retries like any
   * other but, unlike others, without an error line of its own for a case the sink has logged.
   */
  const startingOver = (why: string) => new kafkajs.KafkaJSError(`${why}: starting over`, { retriable: true });

  /**
   * Applies a batch chunk by chunk, handing each chunk's rows to the shared writer, and commits the batch's offset
   * once all its rows are in ClickHouse. A sole writer's batch ends once its rows are handed over; otherwise only
   * after they are written.
   */
  async function handleBatch({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    activeBatches += 1;
    let written: Promise<void> = Promise.resolve();
    try {
      if (Date.now() - lastBatchAt > QUIET_MS) {
        offsetsChecked = commits.committedOffsetsGone().catch((error: unknown) =>
          log.debug({ err: describeError(error) }, 'could not read the committed offsets; the next commit looks again'));
      }
      lastBatchAt = Date.now();
      if (startingOverAlone) {
        // Fetched before the sink went back to its committed offsets: unresolved, it comes again from there.
        await startingOverAlone;
        return;
      }
      await offsetsChecked;
      if (startOverPending()) {
        // Other batches in flight fail too (kafkajs retries them) until one is left to start over.
        if (activeBatches > 1) throw startingOver(commits.topicRemade ? `the topic ${topic} was made again` : `a ${batcher.failure === undefined ? 'read' : 'write'} failed for good`);
        await startOver();
        return;
      }
      const outcomes = new Map<string, number>();
      for (let start = 0; start < batch.messages.length; start += CHUNK) {
        if (!isRunning() || isStale()) return;
        const decoded = await decodeAll(batch.messages.slice(start, start + CHUNK), batch.partition);
        let rows = emptyBlock();
        appliedPartitions.add(batch.partition);
        trimHeld(batch.partition);
        chunking.add(batch.partition);
        try {
          await held.ensureLoaded(decoded.filter(({ change }) => change.op !== 'SNAPSHOT_COMPLETE').map(({ change }) => change), batch.partition, rows);
          for (const { message, change, image } of decoded) {
            const offset = Number(message.offset);
            reads.consumed(batch.partition, offset, Number(message.timestamp));
            if (change.op === 'SNAPSHOT_COMPLETE') {
              written = batcher.add(rows);
              rows = emptyBlock();
              // Rejected only by a failed write, which the sink has logged: the batch fails, and the sink starts over.
              await batcher.durable().catch(() => {
                throw startingOver('a write failed for good');
              });
              await completeSnapshot(change, batch.partition, offset, rows, codec.keySchemaId(message.key!));
            } else {
              const outcome = held.apply(change, batch.partition, offset, rows, image);
              outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
            }
          }
        } finally {
          chunking.delete(batch.partition);
        }
        written = batcher.add(rows);
        await yieldToEngine();
      }
      for (const [outcome, count] of outcomes) metrics.sinkMessages.inc({ outcome }, count);
      metrics.sinkIntegrationsHeld.set(held.size);
      if (deps.soleWriter) {
        if (!isRunning() || isStale()) return;
        resolveOffset(batch.lastOffset());
        // Caught up with every partition: no more rows are coming to gather, so the block is written once it has
        // lingered (at once after a quiet spell, see createWriteBatcher) and its offsets committed at once after.
        noteLag(batch.partition, Number(batch.offsetLag()));
        const caughtUp = [...lagByPartition.values()].every((lag) => lag === 0);
        void commits.whenWritten(batch.partition, batch.lastOffset(), batcher.written(), caughtUp);
        await batcher.room(MAX_GATHERED_ROWS);
      } else {
        await written;
        if (!isRunning() || isStale()) return;
        await commits.whenWritten(batch.partition, batch.lastOffset(), written, true);
        resolveOffset(batch.lastOffset());
      }
      await heartbeat();
    } finally {
      // Strict mode: whatever happened, a batch ends only once the writes of its rows settled.
      if (!deps.soleWriter) await written.catch(() => undefined);
      activeBatches -= 1;
    }
  }

  return {
    async start(): Promise<void> {
      admin = kafka.admin();
      await admin.connect();
      await noteExpiredOffsets();
      const retention = await readRetention();
      dlqProducer = createIdempotentProducer(kafka);
      await dlqProducer.connect();
      const restarts = createConsumerRestarts({
        admin, topic, logger: log, signal: stopping.signal, onRestart: (reason) => metrics.sinkConsumerRestarts.inc({ reason }),
      });
      consumer = kafka.consumer({
        groupId: deps.groupId,
        readUncommitted: false,
        // A fetch waits at most this long for new events: stopping waits for the fetch in flight (5 s by default).
        maxWaitTimeInMs: 500,
        // A fetch's response lives until every batch in it is applied. Much longer, and the young-generation
        // collector copies its messages into the old generation, and its bytes (outside the heap) count towards
        // V8's next full collection: at 2 MiB a response, about a third of 1M-event runs fell into a mode of ~23 full
        // collections and ~10% more CPU, none of ten at 1 MiB (ten interleaved pairs: medians 16.6 s against
        // 17.3). Smaller still, the JS thread waits for fetches (256 KiB per partition: 300k events 11.1 s against
        // 6.4-6.8 s).
        maxBytesPerPartition: 1024 * 1024,
        maxBytes: 1024 * 1024,
        retry: {
          retries: 10,
          // kafkajs asks after its own disconnect, also when the failure came from our stop() closing the
          // connections under a consumer still joining its group: restarted then, it would run on, unowned.
          restartOnFailure: async (error) => !stopping.signal.aborted && restarts.beforeRestart(error),
        },
      });
      // Every batch, those of transaction markers alone included: one beginning past a gap (see batchBegins).
      consumer.on(consumer.events.START_BATCH_PROCESS, ({ payload }) => void expired.batchBegins(payload, startOverPending()));
      // A fetch that holds only transaction markers never reaches eachBatch; commit past it so the group's
      // offsets reach the end of the partition.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (payload.batchSize !== 0) return;
        noteLag(payload.partition, Number(payload.offsetLag));
        void commits.whenWritten(payload.partition, payload.lastOffset, batcher.written());
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        inGroup = false;
        if (payload.restart || stopping.signal.aborted) return;
        running = false;
        log.fatal({ err: describeError(payload.error) }, 'the sink\'s consumer stopped for good: nothing more is consumed');
        stoppedError = new ApigwError(`the sink stopped consuming ${topic}: ${describeError(payload.error)}`, { cause: payload.error });
        stoppedForGood(stoppedError);
      });
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        inGroup = true;
        forgetApplied();
        reads.clear();
        commits.forgetCommitted();
        expired.forgetPositions();
        lagByPartition.clear();
        metrics.sinkLag.reset();
        for (const partition of payload.memberAssignment[topic] ?? []) lagByPartition.set(partition, Infinity);
        void measureLags();
        log.info({ memberId: payload.memberId, assignment: payload.memberAssignment }, 'sink joined the consumer group');
      });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: PARTITIONS_IN_FLIGHT, eachBatch: handleBatch });
      if (stoppedError) throw stoppedError;
      running = true;
      log.info({ topic, groupId: deps.groupId, ...retention }, 'sink started');
    },

    /** True when the group's committed offsets reach the end of every partition. */
    async caughtUp(): Promise<boolean> {
      return (await partitionOffsets()).every(({ committed, high }) => high === 0 || committed >= high);
    },

    async waitForCatchUp(timeoutMs = 120_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!(await this.caughtUp())) {
        if (Date.now() > deadline) throw new Error(`sink did not catch up with ${topic} within ${timeoutMs} ms`);
        await sleep(200);
      }
    },

    /**
     * Rejects when the consumer stopped for good (an error kafkajs does not retry, such as a defect): the process must
     * not go on as if it consumed. Never settles otherwise.
     */
    failed,

    /**
     * Not ok while its consumer is out of its group (restarting after a failure, its topic deleted, say, or stopped),
     * or while a write failed for good and the sink has not started over yet (`write_failed` says why).
     */
    health(): ServiceHealth {
      const lag = Object.fromEntries([...lagByPartition].map(([partition, behind]) => [partition, Number.isFinite(behind) ? behind : null]));
      // A write failed for good and the sink has not started over yet: what it holds is not in the tables.
      const writeFailed = batcher.failure !== undefined;
      return { ok: inGroup && !writeFailed, consuming: inGroup, lag, ...(writeFailed ? { write_failed: describeError(batcher.failure) } : {}) };
    },

    /** Stops fetching, lets the batches in flight end and their rows be written and committed, then leaves. */
    async stop(): Promise<void> {
      stopping.abort();
      inGroup = false;
      try {
        if (running) {
          consumer!.pause([{ topic }]);
          while (activeBatches > 0) await sleep(10);
          await batcher.idle();
          await commits.drain();
        }
      } finally {
        // Every client leaves, whatever the draining met: an open one would keep the process alive.
        await consumer?.disconnect().catch((error: unknown) => log.warn({ err: describeError(error) }, 'consumer disconnect failed'));
        await dlqProducer?.disconnect();
        await admin?.disconnect();
      }
      log.info('sink stopped');
    },
  };
}

export type Sink = ReturnType<typeof createSink>;
