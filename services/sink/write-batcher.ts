import { blockSize, emptyBlock, type RowBlock } from './row-block.js';

/** A promise settled from outside; a rejection nobody awaits (a block no batch waits on) is not an unhandled one. */
function deferred() {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * Group commit: the rows of every batch in flight (any partition) gather into one block, and one block is written
 * at a time. While ClickHouse writes a block the next one gathers, so decoding overlaps the engine's work and
 * blocks grow with the load instead of being one small insert per batch.
 *
 * Every caller awaits `durable()` for the rows it added before its batch ends: no write is ever left running when
 * the consumer rejoins its group, so a partition's next owner never reads state that a late write then changes.
 */
export function createWriteBatcher(write: (block: RowBlock) => Promise<void>) {
  let gathering = emptyBlock();
  let gathered = deferred();
  let writing: Promise<void> | undefined;
  let failure: unknown;

  function startWrite(): void {
    if (writing || blockSize(gathering) === 0) return;
    const block = gathering;
    const done = gathered;
    gathering = emptyBlock();
    gathered = deferred();
    writing = done.promise;
    write(block).then(done.resolve, (error: unknown) => {
      failure = error;
      done.reject(error);
    }).finally(() => {
      writing = undefined;
      // A failed write leaves what was applied in memory ahead of ClickHouse: nothing more is written until reset.
      if (failure === undefined) startWrite();
      else {
        gathered.reject(failure);
        gathering = emptyBlock();
        gathered = deferred();
      }
    });
  }

  /** Settles when everything added so far is in ClickHouse. */
  function durable(): Promise<void> {
    if (failure !== undefined) return Promise.reject(failure);
    if (blockSize(gathering) > 0) return gathered.promise;
    return writing ?? Promise.resolve();
  }

  return {
    /** Adds rows to the gathering block; the promise settles when they are in ClickHouse (or their write failed). */
    add(rows: RowBlock): Promise<void> {
      if (blockSize(rows) === 0) return durable();
      if (failure !== undefined) return Promise.reject(failure);
      const done = gathered.promise;
      gathering.history.append(rows.history);
      gathering.current.append(rows.current);
      gathering.apis.append(rows.apis);
      startWrite();
      return done;
    },

    durable,

    /** The write that failed, if one did: the sink must drop what it applied in memory and restart from its offsets. */
    get failure(): unknown {
      return failure;
    },

    /** After a rejoin: forget a failure (nothing is gathering or being written then, every batch awaited its rows). */
    reset(): void {
      failure = undefined;
      gathering = emptyBlock();
      gathered = deferred();
    },
  };
}

export type WriteBatcher = ReturnType<typeof createWriteBatcher>;
