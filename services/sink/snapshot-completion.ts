import type { Admin } from 'kafkajs';
import type { ChangeCodec } from '../shared/codec.js';
import type { IntegrationChange } from '../shared/integration-model.js';
import { keyPartitions } from '../shared/kafka.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import { chTime } from './change-applier.js';
import type { HeldState } from './held-state.js';
import type { ReadTracker } from './read-tracker.js';
import type { RowBlock } from './row-block.js';
import type { MarkerScope, StateStore } from './state-store.js';

export interface SnapshotCompletionDeps {
  held: HeldState;
  reads: ReadTracker;
  store: StateStore;
  codec: ChangeCodec;
  topic: string;
  admin: () => Admin;
  /** The sink's retried read of the tables, which starts it over when it fails for good. */
  read: <T>(query: () => Promise<T>) => Promise<T>;
  /** The sink's retried write. */
  write: (operation: () => Promise<void>) => Promise<void>;
  metrics: Metrics;
  log: Logger;
}

/**
 * A complete read of a scope (an account and region, or one API of it) finished, as its completion marker in a
 * partition says: deletes what that partition holds of the scope and the read did not see.
 */
export function createSnapshotCompletion({ held, reads, store, codec, topic, admin, read, write, metrics, log }: SnapshotCompletionDeps) {
  /** The partition each candidate's key goes to among the topic's partitions now, framed with `keySchemaId`. */
  async function partitionsNow(scope: MarkerScope, keySchemaId: number, candidates: { arn: string; aws_api_id: string }[]): Promise<number[]> {
    if (candidates.length === 0) return [];
    const [described] = (await admin().fetchTopicMetadata({ topics: [topic] })).topics;
    const partitionOf = keyPartitions(described!.partitions.length);
    return Promise.all(candidates.map(async ({ arn, aws_api_id }) => partitionOf(await codec.frameKey(keySchemaId, {
      account_id: scope.account_id, region: scope.region, api_id: aws_api_id, integration_id: arn.slice(arn.lastIndexOf('/') + 1),
    }))));
  }

  /**
   * Moves integrations whose keys go to another partition now to that partition, in the current-state table and in
   * memory, with no offset there yet: that partition's markers delete them once a read no longer sees them.
   */
  async function handOver(moves: { arn: string; partition: number }[]): Promise<void> {
    await write(() => store.handOver(moves));
    for (const { arn, partition } of moves) held.moveTo(arn, partition);
  }

  /** Counts a marker whose deletions are not this instance's to make now, and says why. */
  function skip(partition: number, marker: IntegrationChange, offset: number, why: string): void {
    reads.complete(partition, marker, offset);
    metrics.sinkMessages.inc({ outcome: 'marker-skipped' });
    log.info({ partition, readId: marker.snapshot!.snapshot_id }, why);
  }

  /**
   * Applies the marker `change` at `offset` of `partition`: the deletions go into `rows`. Everything applied before
   * the marker must be written first (the caller waits for it): the candidates for deletion are read from the tables.
   */
  return async function complete(change: IntegrationChange, partition: number, offset: number, rows: RowBlock, keySchemaId: number): Promise<void> {
    const snapshot = change.snapshot!;
    const scope = { account_id: change.account_id, region: change.region, api_id: change.api_id };
    const seen = reads.seenBy(partition, change);
    if (seen === 'completed') {
      metrics.sinkMessages.inc({ outcome: 'marker-skipped' });
      log.debug({ partition, offset, readId: snapshot.snapshot_id }, 'this marker\'s deletions are made already');
      return;
    }
    if (seen === 'abandoned') {
      skip(partition, change, offset, 'a newer snapshot of this scope began before this one\'s marker; its deletions wait for the next one');
      return;
    }
    if (seen === 'joined-midway') {
      skip(partition, change, offset, 'this instance did not see the whole read in this partition (it started in the middle); its deletions wait for the next one');
      return;
    }
    const candidates = (await read(() => store.liveBeforeMarker({ ...scope, partition, offset, started_at: snapshot.started_at })))
      .filter(({ arn }) => !seen.has(arn));
    // A key lives in one partition while the topic keeps its partitions. Given more, a key may go to another one,
    // where this read saw it (or will not, once it is gone): not this partition's to delete.
    const owners = await partitionsNow(scope, keySchemaId, candidates);
    const moves = candidates.flatMap(({ arn }, i) => (owners[i] === partition ? [] : [{ arn, partition: owners[i]! }]));
    if (moves.length > 0) {
      await handOver(moves);
      log.info({ region: change.region, partition, snapshotId: snapshot.snapshot_id, moved: moves.length }, 'integrations whose keys go to another partition now (the topic has more): moved there');
    }
    const unseen = candidates.filter((_, i) => owners[i] === partition).map(({ arn }) => arn);
    await held.ensureLoaded(unseen.map((arn) => ({ ...scope, arn })), partition, rows);
    for (const arn of unseen) {
      const state = held.state(arn)!;
      held.apply({
        ...change, op: 'DELETE', arn, api_id: state.aws_api_id, integration_id: state.integration_id, after: null, snapshot: null,
      }, partition, offset, rows);
    }
    // The API table is global, not per partition: one partition's marker is enough to retire vanished APIs.
    if (partition === 0) {
      for (const api of await read(() => store.liveApisNotIn({ ...scope, api_ids: snapshot.api_ids }))) {
        held.forgetApi(api.api_id);
        rows.apis.add({ ...api, version: change.observed_at, is_deleted: 1, observed_at: chTime(change.observed_at) });
      }
    }
    reads.complete(partition, change, offset);
    metrics.sinkMessages.inc({ outcome: 'marker' });
    if (unseen.length > 0) log.info({ region: change.region, partition, snapshotId: snapshot.snapshot_id, deleted: unseen.length }, 'deleted integrations the snapshot no longer saw');
  };
}

export type SnapshotCompletion = ReturnType<typeof createSnapshotCompletion>;
