import { deferred } from '../shared/deferred.js';
import { appendBlock, blockSize, emptyBlock, releaseBlock, type RowBlock } from './row-block.js';

/** A rejection for whoever awaits it, and no unhandled one for a caller that does not (a sole writer's batch). */
function rejected(error: unknown): Promise<void> {
  const promise = Promise.reject(error);
  promise.catch(() => undefined);
  return promise;
}

/**
 * Group commit: the rows of every batch in flight (any partition) gather into one block, and one block is written
 * at a time. While ClickHouse writes a block the next one gathers, so decoding overlaps the engine's work and
 * blocks grow with the load instead of being one small insert per batch.
 *
 * A batch's offsets are committed only once `written()` settles for the rows it added. Whether a batch ends before
 * that is the sink's choice (see SinkDeps.soleWriter); either way `idle()` waits out every write before the state
 * is read again from ClickHouse.
 */
export function createWriteBatcher(write: (block: RowBlock) => Promise<void>, { minRows = 1, lingerMs = 0 }: {
  /**
   * Rows a block gathers before its write starts, unless someone waits for it (`durable`, `idle`) or it lingered
   * `lingerMs`. Fewer, larger inserts cost the engine less: each is a part to write and later to merge.
   * @default 1 (a block is written as soon as the engine is free)
   */
  minRows?: number;
  /**
   * How long after the previous write ended a block below `minRows` is written anyway: at once when the engine
   * has been idle that long (a lone change is not held back), otherwise no more than one such write per
   * `lingerMs`, so a steady trickle of rows does not become a stream of tiny parts. @default 0
   */
  lingerMs?: number;
} = {}) {
  let gathering = emptyBlock();
  let gathered = deferred();
  let writing: Promise<void> | undefined;
  let failure: unknown;
  // Someone waits for the gathering block, or it lingered long enough: write it whatever its size.
  let due = false;
  let linger: NodeJS.Timeout | undefined;
  let lastWriteEnded = -Infinity;

  function startWrite(): void {
    if (writing || blockSize(gathering) === 0) return;
    if (!due && blockSize(gathering) < minRows) {
      linger ??= setTimeout(() => {
        due = true;
        startWrite();
      }, Math.max(0, lastWriteEnded + lingerMs - performance.now()));
      return;
    }
    clearTimeout(linger);
    linger = undefined;
    due = false;
    const block = gathering;
    const done = gathered;
    gathering = emptyBlock();
    gathered = deferred();
    writing = done.promise;
    write(block).then(() => {
      releaseBlock(block);
      done.resolve();
    }, (error: unknown) => {
      failure = error;
      done.reject(error);
    }).finally(() => {
      writing = undefined;
      lastWriteEnded = performance.now();
      // A failed write leaves what was applied in memory ahead of ClickHouse: nothing more is written until reset.
      if (failure === undefined) startWrite();
      else {
        gathered.reject(failure);
        gathering = emptyBlock();
        gathered = deferred();
      }
    });
  }

  /** Settles when everything added so far is in ClickHouse, without hurrying its write. */
  function written(): Promise<void> {
    if (failure !== undefined) return rejected(failure);
    if (blockSize(gathering) > 0) return gathered.promise;
    return writing ?? Promise.resolve();
  }

  /** Writes everything added so far as soon as the engine is free; settles when it is in ClickHouse. */
  function durable(): Promise<void> {
    due = true;
    startWrite();
    return written();
  }

  /** Settles, never rejects, once no write runs and no rows wait for one (written, or dropped by a failure). */
  async function idle(): Promise<void> {
    for (;;) {
      due = true;
      startWrite();
      const pending = writing ?? (failure === undefined && blockSize(gathering) > 0 ? gathered.promise : undefined);
      if (!pending) return;
      await pending.catch(() => undefined);
    }
  }

  return {
    /** Adds rows to the gathering block; the promise settles when they are in ClickHouse (or their write failed). */
    add(rows: RowBlock): Promise<void> {
      if (blockSize(rows) === 0) return written();
      if (failure !== undefined) return rejected(failure);
      const done = gathered.promise;
      appendBlock(gathering, rows);
      startWrite();
      return done;
    },

    written,
    durable,
    idle,

    /**
     * Settles once fewer than `rows` rows wait for the next write, or no write runs: what a sink holds in memory
     * ahead of ClickHouse stays bounded however far its batches run ahead of its writes.
     */
    async room(rows: number): Promise<void> {
      while (writing && failure === undefined && blockSize(gathering) >= rows) await writing.catch(() => undefined);
    },

    /** The write that failed, if one did: the sink must drop what it applied in memory and restart from its offsets. */
    get failure(): unknown {
      return failure;
    },

    /** Forgets a failure; only once `idle()` settled (nothing is gathering or being written then). */
    reset(): void {
      failure = undefined;
      gathering = emptyBlock();
      gathered = deferred();
    },
  };
}
