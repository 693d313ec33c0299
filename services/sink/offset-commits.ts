import type { Admin, Consumer } from 'kafkajs';
import { describeError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';

/** The longest a sole writer's written offsets wait to be committed, all partitions in one request. */
const COMMIT_INTERVAL_MS = 200;

export interface OffsetCommitsDeps {
  topic: string;
  groupId: string;
  /** The sink's clients, connected before the first commit. */
  admin: () => Admin;
  consumer: () => Consumer;
  /** Told of each partition's offset once it is committed. */
  onCommitted: (partition: number, offset: number) => void;
  metrics: Metrics;
  log: Logger;
}

/**
 * The sink's offset commits: each partition's offset is committed only once the rows before it are written, every
 * partition's in one request at most COMMIT_INTERVAL_MS later (a commit per batch was ~1,200 requests per million
 * events, each a write to the broker's offsets log on the cores the sink uses). Before each commit it asks whether
 * the group's committed offsets are gone: the topic deleted and made again under the sink.
 */
export function createOffsetCommits(deps: OffsetCommitsDeps) {
  const { topic, metrics, log } = deps;
  // Offsets whose rows are written, per partition, until the next commit carries them all.
  const writtenOffsets = new Map<number, number>();
  let commitTimer: NodeJS.Timeout | undefined;
  // The commits sent so far, in order, and the written-offset records still waiting for their writes.
  let commits: Promise<void> = Promise.resolve();
  let recording: Promise<void> = Promise.resolve();
  // What this instance last committed, or found committed when it joined, per partition; and whether the group's
  // committed offsets were since found below it (see committedOffsetsGone), until the sink starts afresh.
  const committedByUs = new Map<number, number>();
  let topicRemade = false;

  /** Commits every written offset not committed yet, in one request. */
  function flush(): Promise<void> {
    clearTimeout(commitTimer);
    commitTimer = undefined;
    if (writtenOffsets.size === 0) return commits;
    const offsets = [...writtenOffsets].map(([partition, next]) => ({ topic, partition, offset: String(next) }));
    writtenOffsets.clear();
    commits = commits.then(async () => {
      if (await committedOffsetsGone()) return;
      await deps.consumer().commitOffsets(offsets);
      for (const { partition, offset } of offsets) {
        committedByUs.set(partition, Number(offset));
        deps.onCommitted(partition, Number(offset));
        metrics.sinkLastOffset.set({ partition: String(partition) }, Number(offset) - 1);
      }
    }).catch((error: unknown) => log.warn({ offsets, err: describeError(error) }, 'committing offsets failed; a later commit covers them'));
    return commits;
  }

  /**
   * True when the group's committed offset of a partition is below the one this instance committed: the broker
   * dropped them because the topic was deleted. Made again, the topic's offsets start over, and the positions this
   * instance holds point into its middle, past events it never read: nothing more is committed, and the sink's next
   * batch starts over from the topic's start.
   */
  async function committedOffsetsGone(): Promise<boolean> {
    if (topicRemade) return true;
    const [committed] = await deps.admin().fetchOffsets({ groupId: deps.groupId, topics: [topic] });
    // A partition with no commit of ours to compare is left out (the group's offset may be a negative stand-in then).
    const gone = committed!.partitions.filter(({ partition, offset }) => committedByUs.has(partition) && Number(offset) < committedByUs.get(partition)!);
    if (gone.length === 0) return false;
    topicRemade = true;
    metrics.sinkTopicRemade.inc();
    log.warn({ topic, partitions: gone.map(({ partition }) => partition) }, 'the group\'s committed offsets are gone: the topic was deleted and made again; consuming it again from its start');
    return true;
  }

  return {
    flush,
    committedOffsetsGone,

    /** The group's committed offsets were found gone (the topic made again), until `startAfresh`. */
    get topicRemade(): boolean {
      return topicRemade;
    },

    /**
     * Commits a partition's offset past `last` once `written` settles, never before: at the latest COMMIT_INTERVAL_MS
     * after, with the other partitions' (at once when `now`). A write that fails commits nothing.
     */
    whenWritten(partition: number, last: string, written: Promise<void>, now = false): Promise<void> {
      const recorded = written.then(
        () => {
          writtenOffsets.set(partition, Math.max(writtenOffsets.get(partition) ?? 0, Number(last) + 1));
          if (now) return flush();
          commitTimer ??= setTimeout(() => void flush(), COMMIT_INTERVAL_MS);
          return undefined;
        },
        () => undefined,
      );
      recording = recording.then(() => recorded);
      return recorded;
    },

    /** What this instance last committed for a partition, or found committed when it joined. */
    lastCommitted(partition: number): number | undefined {
      return committedByUs.get(partition);
    },

    /** A partition's committed offset, read after joining the group. */
    foundCommitted(partition: number, committed: number): void {
      committedByUs.set(partition, Math.max(committed, committedByUs.get(partition) ?? 0));
    },

    /** The group assigned partitions anew: what was committed before is not this instance's to compare. */
    forgetCommitted(): void {
      committedByUs.clear();
    },

    /** Every written offset recorded, then committed. */
    async drain(): Promise<void> {
      await recording;
      await flush();
    },

    /** Every record and commit under way settled, and the written offsets not committed yet dropped. */
    async dropUncommitted(): Promise<void> {
      await recording;
      await commits;
      writtenOffsets.clear();
    },

    /** The topic made again is consumed from its start: what this instance committed before counts no more. */
    startAfresh(): void {
      committedByUs.clear();
      topicRemade = false;
    },
  };
}

export type OffsetCommits = ReturnType<typeof createOffsetCommits>;
