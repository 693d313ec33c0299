import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deferred } from '../../services/shared/deferred.js';
import type { IntegrationChange } from '../../services/shared/integration-model.js';
import { createLogger } from '../../services/shared/logger.js';
import type { AppliedState } from '../../services/sink/change-applier.js';
import { createHeldState } from '../../services/sink/held-state.js';
import { ReadTracker } from '../../services/sink/read-tracker.js';
import { emptyBlock, type RowBlock } from '../../services/sink/row-block.js';
import type { StateStore } from '../../services/sink/state-store.js';
import { cloudTrailSource, integrationChange, snapshotSource } from '../support/changes.js';

const REGION = 'eu-west-1';
const PARTITION = 0;

/**
 * Held state over tables kept in memory (`tables`, which another held state may share): what they hold per ARN, as
 * a write of the state would leave it.
 * `write` stands for the sink's write of a block: it puts the block's states in the tables and lets go of its deletions.
 */
function heldOverTables(firstOffset = 0, limit?: number, tables = new Map<string, AppliedState>()) {
  let nextOffset = firstOffset;
  const store = {
    storedArns: async (atMost: number) => new Set([...tables.keys()].slice(0, atMost)),
    apiInfo: async () => [],
    load: async (_scope: unknown, arns: string[]) => ({
      states: arns.flatMap((arn) => (tables.has(arn) ? [structuredClone(tables.get(arn)!)] : [])), repairs: [],
    }),
  } as unknown as StateStore;
  const held = createHeldState({ store, reads: new ReadTracker(), read: (query) => query(), log: createLogger('silent'), limit });

  /**
   * Applies `changes` as one chunk of the partition's batch does, at the partition's next offsets; returns the chunk's
   * rows, and how many integrations it let go of first.
   */
  async function chunk(...changes: IntegrationChange[]): Promise<{ rows: RowBlock; outcomes: string[]; letGo: number }> {
    const rows = emptyBlock();
    const letGo = held.trim(PARTITION);
    await held.ensureLoaded(changes, PARTITION, rows);
    const outcomes = changes.map((change) => held.apply(change, PARTITION, nextOffset++, rows));
    return { rows, outcomes, letGo };
  }

  function write(rows: RowBlock, arns: string[]): void {
    for (const arn of arns) tables.set(arn, structuredClone(held.state(arn)!));
    held.written(rows.states);
  }

  return { held, tables, chunk, write };
}

const created = (integrationId: string, snapshotId = 's1') =>
  integrationChange({ region: REGION, apiId: 'a1', integrationId, source: snapshotSource(snapshotId), eventTime: 1_000 });
const deleted = (integrationId: string): IntegrationChange => ({
  ...integrationChange({ region: REGION, apiId: 'a1', integrationId, source: cloudTrailSource(`del-${integrationId}`), eventTime: 2_000 }),
  op: 'DELETE', after: null,
});

describe('what the sink holds of the tables', () => {
  it('an integration the tables hold is read back before its event applies: a re-read writes nothing, a change one version more', async () => {
    const first = heldOverTables();
    const { rows } = await first.chunk(created('i1'));
    first.write(rows, [created('i1').arn]);

    // Another instance (or this one after a rebalance) holds nothing in memory, the same tables.
    const next = heldOverTables(1, undefined, first.tables);
    const reread = await next.chunk(created('i1', 's2'));
    assert.deepEqual(reread.outcomes, ['reread']);
    assert.equal(reread.rows.history.count + reread.rows.current.count, 0);

    const update = integrationChange({ region: REGION, apiId: 'a1', integrationId: 'i1', source: cloudTrailSource('u1'), eventTime: 3_000, timeout: 9_000 });
    const changed = await next.chunk(update);
    assert.deepEqual(changed.outcomes, ['changed']);
    assert.equal(changed.rows.history.count, 1);
    assert.equal(next.held.state(update.arn)?.version, 2);
  });

  it('lets go of a deleted integration once its deletion is written, and a late copy of its old event changes nothing', async () => {
    const { held, chunk, write } = heldOverTables();
    const live = await chunk(created('i1'), created('i2'));
    write(live.rows, [created('i1').arn, created('i2').arn]);
    const deletion = await chunk(deleted('i1'));
    assert.deepEqual(deletion.outcomes, ['changed']);
    assert.equal(held.size, 2, 'held until its deletion is written');
    write(deletion.rows, [created('i1').arn]);

    const late = await chunk(created('i1'));
    assert.deepEqual(late.outcomes, ['unchanged'], 'the deletion read back from the tables: the old event is older than it');
    assert.equal(late.rows.history.count + late.rows.current.count, 0);
    await chunk();
    assert.equal(held.size, 1, 'the state read back for the late event is let go again');
    assert.equal(held.state(created('i1').arn), undefined);
  });

  it('above its limit, lets go of the integrations held longest once written, and reads one back when its event comes', async () => {
    const { held, chunk, write } = heldOverTables(0, 2);
    const first = await chunk(created('i1'), created('i2'), created('i3'));
    write(first.rows, ['i1', 'i2', 'i3'].map((id) => created(id).arn));
    const next = await chunk(created('i4'));
    assert.equal(next.letGo, 1);
    assert.equal(held.state(created('i1').arn), undefined, 'the one held longest');
    assert.equal(held.size, 3, 'the limit, and the chunk after it');

    const update = integrationChange({ region: REGION, apiId: 'a1', integrationId: 'i1', source: cloudTrailSource('u1'), eventTime: 3_000, timeout: 9_000 });
    const changed = await chunk(update);
    assert.deepEqual(changed.outcomes, ['changed']);
    assert.equal(held.state(update.arn)?.version, 2, 'read back from the tables: an update of version 1, not a new integration');
    assert.equal(changed.rows.history.count, 1);
  });

  it('with more integrations in the tables than its limit, keeps none of their keys: a key seen first is still new, one the tables hold an update', async () => {
    const first = heldOverTables(0, 2);
    const { rows } = await first.chunk(created('i1'), created('i2'), created('i3'));
    first.write(rows, ['i1', 'i2', 'i3'].map((id) => created(id).arn));

    const next = heldOverTables(3, 2, first.tables);
    const update = integrationChange({ region: REGION, apiId: 'a1', integrationId: 'i3', source: cloudTrailSource('u3'), eventTime: 3_000, timeout: 9_000 });
    const changed = await next.chunk(update, created('i9'));
    assert.deepEqual(changed.outcomes, ['changed', 'changed']);
    assert.deepEqual([...changed.rows.historyOperations].sort(), [['CREATE', 1], ['UPDATE', 1]]);
    assert.equal(next.held.state(update.arn)?.version, 2, 'read back from the tables');
    assert.equal(next.held.state(created('i9').arn)?.version, 1, 'a new integration');
  });

  it('never lets go of an integration whose rows wait for their write, however far above its limit', async () => {
    const { held, chunk, write } = heldOverTables(0, 1);
    const waiting = await chunk(created('i1'), created('i2'));
    const more = await chunk(created('i3'));
    assert.equal(more.letGo, 0);
    assert.equal(held.size, 3);
    write(waiting.rows, [created('i1').arn, created('i2').arn]);
    assert.equal((await chunk()).letGo, 2, 'i3 still waits');
    assert.ok(held.state(created('i3').arn));
  });

  it('writes an API row only when the API is new or changed', async () => {
    const { chunk } = heldOverTables();
    const withApi = (integrationId: string, name: string): IntegrationChange => ({
      ...created(integrationId), api: { name, protocol_type: 'HTTP', api_endpoint: 'https://a1.example' },
    });
    assert.equal((await chunk(withApi('i1', 'orders'))).rows.apis.count, 1);
    assert.equal((await chunk(withApi('i2', 'orders'))).rows.apis.count, 0);
    assert.equal((await chunk(withApi('i3', 'orders-v2'))).rows.apis.count, 1);
  });

  it('after forget, looks keys up only once the writes still running have settled, and then from the tables', async () => {
    const { held, tables, chunk } = heldOverTables();
    await chunk(created('i1'));
    const written = structuredClone(held.state(created('i1').arn)!);
    const settled = deferred();
    held.forget(settled.promise);
    assert.equal(held.size, 0);

    let looked = false;
    const lookUp = chunk(created('i1', 's2')).then((result) => ((looked = true), result));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(looked, false, 'waits for the writes');
    tables.set(written.arn, written);
    settled.resolve();
    assert.deepEqual((await lookUp).outcomes, ['reread'], 'the write that settled is what the look-up finds');
    assert.equal(tables.size, 1);
  });
});
