import type { EncodedImage } from '../shared/codec.js';
import { apiArn, apiIdOf, type ApiInfo, type IntegrationChange } from '../shared/integration-model.js';
import type { Logger } from '../shared/logger.js';
import { applyChange, chTime, type AppliedState } from './change-applier.js';
import type { ReadTracker } from './read-tracker.js';
import { countOperation, type RowBlock } from './row-block.js';
import type { StateStore } from './state-store.js';

export interface HeldStateDeps {
  store: StateStore;
  /**
   * The most integrations held at once. Beyond it, `trim` lets go of a partition's integrations held longest whose
   * rows are written; an event that comes for one of them reads it back from the tables first (`ensureLoaded`), as
   * after a restart. @default no limit
   */
  limit?: number;
  /** Records which read saw each change applied (see ReadTracker.see). */
  reads: ReadTracker;
  /** Reads the tables: the sink's retried read, which starts the sink over when it fails for good. */
  read: <T>(query: () => Promise<T>) => Promise<T>;
  log: Logger;
}

/** What an integration's key names: where its state is looked up. */
export interface IntegrationKey {
  account_id: string;
  region: string;
  arn: string;
}

const sameApi = (a: ApiInfo, b: ApiInfo) => a.name === b.name && a.protocol_type === b.protocol_type && a.api_endpoint === b.api_endpoint;

/**
 * Integrations looked at, at most, per integration let go of at the limit: the ones held longest may belong to other
 * partitions or wait for their writes, and a trim must not scan the whole map to find its own.
 */
const SCAN_PER_LET_GO = 16;

/**
 * What the sink holds in memory of the tables, for the partitions it owns: the state applied per integration, which
 * APIs the API table holds, and which integrations the tables hold at all. Applying a change updates it and adds the
 * rows the change needs to a block; what it lacks is read from the tables on first use.
 */
export function createHeldState({ store, reads, read, log, limit = Infinity }: HeldStateDeps) {
  // What was applied per integration ARN. A deleted integration's state is dropped once its deletion is written (see
  // letGo), so the map holds the live inventory, not every integration ever deleted.
  const applied = new Map<string, AppliedState>();
  // Deleted states the tables hold (written, or read back), per partition, until that partition's next chunk drops them.
  const deletedInTables = new Map<number, AppliedState[]>();
  // What the API table holds per API id: an API row is written only when it changes.
  const apiStored = new Map<string, ApiInfo>();
  // Which keys the tables hold: read once per group assignment (with the API rows), and grown with every key
  // applied, never shrunk (a key written while the read ran must not look new). A key seen for the first time
  // needs no look-up, which on a growing inventory is most of them. Kept for at most `limit` keys, as many as the
  // integrations held; past that, undefined: memory would grow with the inventory again, so every key not held is
  // looked up, as the integrations let go of are anyway.
  let inTables: Set<string> | undefined = new Set<string>();
  let tablesRead: Promise<void> | undefined;

  function readTables(): Promise<void> {
    return (async () => {
      const keep = inTables !== undefined;
      const [arns, apis] = await read(() => Promise.all([keep ? store.storedArns(limit + 1) : undefined, store.apiInfo()]));
      for (const arn of arns ?? []) inTables?.add(arn);
      trimKeys();
      for (const api of apis) apiStored.set(api.api_id, api);
      log.info({ integrations: inTables?.size, apis: apis.length }, 'read which integrations the tables hold');
    })();
  }

  /** Stops keeping the keys the tables hold once there are more than `limit`. */
  function trimKeys(): void {
    if (!inTables || inTables.size <= limit) return;
    inTables = undefined;
    log.info({ limit }, 'the tables hold more integrations than the sink holds: it no longer keeps their keys, and looks up every key it does not hold');
  }

  /** `rows` hold rows of `state`: it stays in memory until they are written (see written). */
  function carry(rows: RowBlock, state: AppliedState): void {
    state.pendingWrites += 1;
    rows.states.push(state);
  }

  /**
   * Lets go of up to `count` of the partition's integrations held longest whose rows are all written: the tables hold
   * what memory does (but for re-reads, which move a state's position without a write, as a restart forgets them).
   */
  function letGoOldest(partition: number, count: number): number {
    let released = 0;
    let scanned = 0;
    for (const [arn, state] of applied) {
      if (released === count || scanned++ === count * SCAN_PER_LET_GO) break;
      if (state.kafka_partition !== partition || state.pendingWrites) continue;
      applied.delete(arn);
      released += 1;
    }
    return released;
  }

  /** A deleted state the tables hold: the partition's next chunk drops it from memory (see trim). */
  function letGo(partition: number, state: AppliedState): void {
    const states = deletedInTables.get(partition);
    if (states) states.push(state);
    else deletedInTables.set(partition, [state]);
  }

  /**
   * Applies one change to memory and adds the rows it needs to `rows`; returns the outcome counted in metrics.
   * `image`: the change's after-image with its bytes, kept with the state it gives.
   */
  function apply(change: IntegrationChange, partition: number, offset: number, rows: RowBlock, image: EncodedImage | null = null): string {
    // The applied state's copy of the ARN: one string per integration, however many reads saw it.
    const prior = applied.get(change.arn);
    reads.see(partition, change, prior?.arn ?? change.arn);
    const result = applyChange(prior, change, { partition, offset }, image);
    if (!result) return 'unchanged';
    applied.set(change.arn, result.state);
    if (result.current || result.attribution) carry(rows, result.state);
    if (result.current) {
      rows.current.add(result.current);
      if (inTables && !inTables.has(change.arn)) {
        inTables.add(change.arn);
        trimKeys();
      }
    }
    if (result.history) {
      rows.history.add(result.history, `${change.arn}@${result.state.version}`);
      countOperation(rows, String(result.history.operation));
    }
    if (result.attribution) rows.attributions.add(result.attribution, `${change.arn}@${result.state.version}`);
    if (change.api) {
      const uuid = apiIdOf(change.after, change.region, change.api_id);
      const stored = apiStored.get(uuid);
      if (!stored || !sameApi(stored, change.api)) {
        apiStored.set(uuid, change.api);
        rows.apis.add({
          api_id: uuid, account_id: change.account_id, region: change.region, aws_api_id: change.api_id,
          arn: apiArn(change.region, change.api_id), ...change.api, version: change.observed_at, is_deleted: 0,
          observed_at: chTime(change.observed_at),
        });
      }
    }
    return result.history ? 'changed' : result.attribution ? 'attributed' : 'reread';
  }

  return {
    apply,

    /** The state applied to an integration, if it is held. */
    state: (arn: string): AppliedState | undefined => applied.get(arn),

    /** The after-image last kept for an integration: a re-read with the same bytes is not decoded again. */
    previousImage: (arn: string): EncodedImage | undefined => applied.get(arn)?.image,

    /** How many integrations are held. */
    get size(): number {
      return applied.size;
    },

    /**
     * Loads the states of `keys` the tables hold and memory does not, adding to `rows` the repairs of current rows
     * left behind their history by an interrupted write. Waits first for the read of which keys the tables hold.
     */
    async ensureLoaded(keys: IntegrationKey[], partition: number, rows: RowBlock): Promise<void> {
      await (tablesRead ??= readTables());
      const missing = new Map<string, { scope: { account_id: string; region: string }; arns: Set<string> }>();
      for (const { account_id, region, arn } of keys) {
        if (applied.has(arn) || (inTables && !inTables.has(arn))) continue;
        const scopeKey = `${account_id}/${region}`;
        if (!missing.has(scopeKey)) missing.set(scopeKey, { scope: { account_id, region }, arns: new Set() });
        missing.get(scopeKey)!.arns.add(arn);
      }
      for (const { scope, arns } of missing.values()) {
        const loaded = await read(() => store.load(scope, [...arns]));
        for (const state of loaded.states) {
          applied.set(state.arn, state);
          // Read back for a late event of a deleted integration: the tables hold it (a repair among this block's rows
          // would only be made again by the next look-up), so the partition's next chunk lets go of it again.
          if (state.deleted) letGo(partition, state);
        }
        if (loaded.repairs.length > 0) log.warn({ count: loaded.repairs.length }, 'current state behind history after an interrupted write; repairing');
        for (const repair of loaded.repairs) {
          rows.current.add(repair);
          carry(rows, applied.get(String(repair.arn))!);
        }
      }
    },

    /** The rows of `states` (a block's) are written: deleted ones are let go of by their partition's next chunk. */
    written(states: AppliedState[]): void {
      for (const state of states) {
        state.pendingWrites -= 1;
        if (state.deleted) letGo(state.kafka_partition, state);
      }
    },

    /**
     * Drops from memory a partition's deleted states that the tables hold (see letGo), unless a later change replaced
     * them, and, above the limit, its integrations held longest (see letGoOldest); returns how many of those it let
     * go. An event that comes for one of them again finds it in the tables (`ensureLoaded`). Never while a chunk of
     * the partition is between the look-up of its keys and its last change: a state dropped in between would make a
     * redelivered event look like a new integration.
     */
    trim(partition: number): number {
      const states = deletedInTables.get(partition);
      if (states) {
        deletedInTables.delete(partition);
        for (const state of states) if (applied.get(state.arn) === state) applied.delete(state.arn);
      }
      return applied.size > limit ? letGoOldest(partition, applied.size - limit) : 0;
    },

    /** An integration whose key goes to `partition` now: it is that partition's, with no offset there yet. */
    moveTo(arn: string, partition: number): void {
      const state = applied.get(arn);
      if (state && state.kafka_partition !== partition) Object.assign(state, { kafka_partition: partition, kafka_offset: -1 });
    },

    /** The API table no longer holds this API as live. */
    forgetApi(apiId: string): void {
      apiStored.delete(apiId);
    },

    /**
     * Forgets what was applied: it is read again from the tables for the keys seen next, once `writesSettled` has
     * (batches look up their keys first thing, so they wait for it too).
     */
    forget(writesSettled: Promise<void>): void {
      applied.clear();
      apiStored.clear();
      tablesRead = writesSettled.then(() => {
        deletedInTables.clear();
        return readTables();
      });
      // The next batch awaits it; a failure before one does is not an unhandled one (that batch reads again).
      tablesRead.catch(() => undefined);
    },
  };
}

export type HeldState = ReturnType<typeof createHeldState>;
