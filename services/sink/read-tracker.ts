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
 */
export class ReadTracker {
  private readonly seenByRead = new Map<string, Set<string>>();
  // The snapshot read under way per (partition, account, region).
  private readonly snapshotUnderWay = new Map<string, string>();
  private readonly abandoned = new Set<string>();
  private readonly lastSeen = new Map<number, { readId: string; account_id: string; region: string; seen: Set<string> }>();

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
    if (this.abandoned.has(key)) return;
    let seen = this.seenByRead.get(key);
    if (!seen) {
      this.seenByRead.set(key, (seen = new Set()));
      if (change.source.type === 'SNAPSHOT') this.begin(scopeKey(partition, change), key);
    }
    seen.add(arn);
    this.lastSeen.set(partition, { readId, account_id: change.account_id, region: change.region, seen });
  }

  /**
   * What the read that `marker` completes saw in this partition, or 'abandoned'; the read is still tracked, so that a
   * marker whose deletions fail half-way (a read of the tables failing) finds the same set when it comes again.
   */
  seenBy(partition: number, marker: IntegrationChange): Set<string> | 'abandoned' {
    const key = readKey(partition, marker.snapshot!.snapshot_id, marker);
    return this.abandoned.has(key) ? 'abandoned' : (this.seenByRead.get(key) ?? new Set<string>());
  }

  /** Forgets the read that `marker` completes, once its deletions are made; returns what seenBy returned. */
  complete(partition: number, marker: IntegrationChange): Set<string> | 'abandoned' {
    const key = readKey(partition, marker.snapshot!.snapshot_id, marker);
    this.lastSeen.delete(partition);
    if (this.abandoned.delete(key)) return 'abandoned';
    const seen = this.seenByRead.get(key) ?? new Set<string>();
    this.seenByRead.delete(key);
    const scope = scopeKey(partition, marker);
    if (this.snapshotUnderWay.get(scope) === key) this.snapshotUnderWay.delete(scope);
    return seen;
  }

  clear(): void {
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
