import type { IntegrationChange } from '../shared/integration-model.js';

/** Abandoned reads remembered so that a late marker of one deletes nothing; the oldest are forgotten first. */
const ABANDONED_LIMIT = 10_000;

/**
 * Which integrations each complete read (a snapshot, or an API-scoped CloudTrail read) saw in each partition,
 * until the read's completion marker in that partition asks for them.
 *
 * One snapshot reads every region under one id and marks each region complete separately, so a read is keyed by
 * (partition, read id, account, region): keyed by id alone, the first region's marker would take the others'
 * integrations with it. A snapshot that never marks its end (its process died) is abandoned when the next
 * snapshot of the same scope begins in that partition, so the sets do not grow without end; should its marker
 * still come, it deletes nothing and the next snapshot's marker does the deleting.
 *
 * A completed read is remembered, with its marker's offset, until that partition's committed offset passes the
 * marker: the marker may come again before that (its batch applied again, or the sink starting over from the committed
 * offsets after a failure), with only the part of its read that followed the committed offset, and deleting what that
 * part did not see would delete what the whole read saw. It deletes nothing the second time.
 */
export class ReadTracker {
  private readonly seenByRead = new Map<string, Set<string>>();
  // The snapshot read under way per (partition, account, region).
  private readonly snapshotUnderWay = new Map<string, string>();
  private readonly abandoned = new Set<string>();
  // Per partition, the reads whose markers were applied and the markers' offsets, until those offsets are committed.
  private readonly completed = new Map<number, Map<string, number>>();
  private readonly lastSeen = new Map<number, { readId: string; account_id: string; region: string; seen: Set<string> }>();
  // When the first message this instance applied from each partition since it joined was produced (see consumed).
  private readonly firstProducedAt = new Map<number, number>();

  /**
   * A message of `partition` at `offset`, produced at `producedAt` (its Kafka timestamp), is applied. Every event of a
   * read is produced after the read started, and a partition is consumed in order: if the first message applied
   * since joining was produced before a read started, or is the partition's first ever (offset 0: a new topic's first
   * read), this instance saw the whole read; otherwise (it joined in the middle) the read's marker finds it
   * 'joined-midway'. (Observation times cannot decide this: a CloudTrail re-read is observed before it is produced,
   * so it can land after a snapshot's events with an earlier observation time.) Producer and reader share a clock:
   * the read's start and its events' timestamps come from the same process.
   */
  consumed(partition: number, offset: number, producedAt: number): void {
    if (!this.firstProducedAt.has(partition)) this.firstProducedAt.set(partition, offset === 0 ? -Infinity : producedAt);
  }

  /** Whether this instance applied anything of `partition` since it joined or started afresh. */
  hasConsumed(partition: number): boolean {
    return this.firstProducedAt.has(partition);
  }

  /** Records that the read `change` belongs to saw its integration (`arn`: the caller's copy of the ARN). */
  see(partition: number, change: IntegrationChange, arn: string): void {
    const readId = change.source.snapshot_id;
    if (!readId || change.op === 'DELETE') return;
    // A partition's events come a read at a time: most belong to the read of the event before.
    const last = this.lastSeen.get(partition);
    if (last && last.readId === readId && last.account_id === change.account_id && last.region === change.region) {
      last.seen.add(arn);
      return;
    }
    const key = readKey(partition, readId, change);
    // Two snapshots of one scope interleaved (two snapshotters): the one abandoned stays abandoned.
    if (this.abandoned.has(key) || this.completed.get(partition)?.has(key)) return;
    let seen = this.seenByRead.get(key);
    if (!seen) {
      this.seenByRead.set(key, (seen = new Set()));
      if (change.source.type === 'SNAPSHOT') this.begin(scopeKey(partition, change), key);
    }
    seen.add(arn);
    this.lastSeen.set(partition, { readId, account_id: change.account_id, region: change.region, seen });
  }

  /**
   * What the read that `marker` completes saw in this partition; 'abandoned' when a newer snapshot of its scope began
   * first, 'joined-midway' when this instance did not see the whole read (see consumed). The read is still tracked,
   * so that a marker whose deletions fail half-way (a read of the tables failing) finds the same set when it comes again.
   */
  seenBy(partition: number, marker: IntegrationChange): Set<string> | 'abandoned' | 'completed' | 'joined-midway' {
    const key = readKey(partition, marker.snapshot!.snapshot_id, marker);
    if (this.completed.get(partition)?.has(key)) return 'completed';
    if (this.abandoned.has(key)) return 'abandoned';
    if ((this.firstProducedAt.get(partition) ?? Infinity) >= marker.snapshot!.started_at) return 'joined-midway';
    return this.seenByRead.get(key) ?? new Set<string>();
  }

  /**
   * Forgets what the read that `marker` (at `offset`) completes saw, once its deletions are made, and remembers that
   * it is complete (see the class).
   */
  complete(partition: number, marker: IntegrationChange, offset: number): void {
    const key = readKey(partition, marker.snapshot!.snapshot_id, marker);
    this.lastSeen.delete(partition);
    let completed = this.completed.get(partition);
    if (!completed) this.completed.set(partition, (completed = new Map()));
    completed.set(key, offset);
    if (this.abandoned.delete(key)) return;
    this.seenByRead.delete(key);
    const scope = scopeKey(partition, marker);
    if (this.snapshotUnderWay.get(scope) === key) this.snapshotUnderWay.delete(scope);
  }

  /** The partition's committed offset is `offset`: the markers before it cannot come again. */
  committed(partition: number, offset: number): void {
    const completed = this.completed.get(partition);
    if (!completed) return;
    for (const [key, markerOffset] of completed) if (markerOffset < offset) completed.delete(key);
  }

  clear(): void {
    this.firstProducedAt.clear();
    this.completed.clear();
    this.lastSeen.clear();
    this.seenByRead.clear();
    this.snapshotUnderWay.clear();
    this.abandoned.clear();
  }

  private begin(scope: string, key: string): void {
    const previous = this.snapshotUnderWay.get(scope);
    this.snapshotUnderWay.set(scope, key);
    if (previous === undefined) return;
    this.seenByRead.delete(previous);
    this.abandoned.add(previous);
    if (this.abandoned.size > ABANDONED_LIMIT) this.abandoned.delete(this.abandoned.values().next().value!);
  }
}

const scopeKey = (partition: number, change: IntegrationChange) => `${partition}\u0000${change.account_id}\u0000${change.region}`;

const readKey = (partition: number, readId: string, change: IntegrationChange) =>
  `${partition}\u0000${readId}\u0000${change.account_id}\u0000${change.region}`;
