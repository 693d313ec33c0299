import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExpiredOffsets } from '../../services/sink/expired-offsets.js';

describe('the offsets the retention deleted, said once each', () => {
  it('says a range once, however many times it is found', () => {
    const expired = new ExpiredOffsets(() => undefined);
    assert.deepEqual(expired.note(0, 10, 20), [{ from: 10, to: 20 }]);
    assert.deepEqual(expired.note(0, 10, 20), []);
    assert.deepEqual(expired.note(0, 12, 20), []);
  });

  it('says only what a later range adds, before the range said and after it', () => {
    const expired = new ExpiredOffsets(() => undefined);
    expired.note(0, 10, 20);
    // A batch found 10-19 skipped; the start-over then finds what the sink had read and not written, from 4.
    assert.deepEqual(expired.note(0, 4, 20), [{ from: 4, to: 10 }]);
    // The retention went on while the sink could not write: from what it last wrote to the partition's first now.
    assert.deepEqual(expired.note(0, 4, 30), [{ from: 20, to: 30 }]);
    assert.deepEqual(expired.note(0, 2, 35), [{ from: 2, to: 4 }, { from: 30, to: 35 }]);
  });

  it('keeps partitions apart, and says a range apart from the last one as it is', () => {
    const expired = new ExpiredOffsets(() => undefined);
    expired.note(0, 10, 20);
    assert.deepEqual(expired.note(1, 10, 20), [{ from: 10, to: 20 }]);
    assert.deepEqual(expired.note(0, 50, 60), [{ from: 50, to: 60 }]);
    assert.deepEqual(expired.note(0, 55, 70), [{ from: 60, to: 70 }]);
  });

  it('says nothing of an empty range, or of a partition with no committed offset (-1)', () => {
    const expired = new ExpiredOffsets(() => undefined);
    assert.deepEqual(expired.note(0, 20, 20), []);
    assert.deepEqual(expired.note(0, 30, 20), []);
    assert.deepEqual(expired.note(0, -1, 20), []);
  });

  it('forgets what it said once cleared (the topic made again numbers its offsets anew)', () => {
    const expired = new ExpiredOffsets(() => undefined);
    expired.note(0, 10, 20);
    expired.clear();
    assert.deepEqual(expired.note(0, 10, 20), [{ from: 10, to: 20 }]);
  });
});

describe('a batch beginning past where its partition\'s last one ended', () => {
  const batch = (partition: number, firstOffset: number | null, lastOffset: number) =>
    ({ partition, firstOffset: firstOffset === null ? null : String(firstOffset), lastOffset: String(lastOffset) });

  it('says the offsets between, and nothing of batches that follow each other', () => {
    const expired = new ExpiredOffsets(() => undefined);
    assert.deepEqual(expired.batchBegins(batch(0, 0, 99), false), [], 'the first batch since the partition was assigned');
    assert.deepEqual(expired.batchBegins(batch(0, 100, 100), false), [], 'a transaction marker alone');
    assert.deepEqual(expired.batchBegins(batch(0, 101, 150), false), []);
    assert.deepEqual(expired.batchBegins(batch(1, 40, 60), false), [], 'partitions apart');
    assert.deepEqual(expired.batchBegins(batch(0, 180, 200), false), [{ from: 151, to: 180 }]);
    assert.deepEqual(expired.batchBegins(batch(0, 201, 210), false), []);
  });

  it('takes a batch beginning earlier (fetched again after a start-over) as it comes', () => {
    const expired = new ExpiredOffsets(() => undefined);
    expired.batchBegins(batch(0, 0, 99), false);
    assert.deepEqual(expired.batchBegins(batch(0, 50, 99), false), []);
    assert.deepEqual(expired.batchBegins(batch(0, 100, 120), false), []);
  });

  it('leaves the gap to the start-over when one is coming, and what the start-over said is not said again', () => {
    const expired = new ExpiredOffsets(() => undefined);
    expired.batchBegins(batch(0, 0, 99), false);
    assert.deepEqual(expired.batchBegins(batch(0, 180, 200), true), []);
    assert.deepEqual(expired.note(0, 60, 180), [{ from: 60, to: 180 }], 'from what the sink last wrote');
    assert.deepEqual(expired.batchBegins(batch(0, 180, 200), false), [], 'the same batch again, after the start-over');
  });

  it('says nothing on a compacted topic, whose offsets have gaps of their own, nor after the partitions were assigned anew', () => {
    const compacted = new ExpiredOffsets(() => undefined);
    compacted.compacted = true;
    compacted.batchBegins(batch(0, 0, 99), false);
    assert.deepEqual(compacted.batchBegins(batch(0, 180, 200), false), []);
    const reassigned = new ExpiredOffsets(() => undefined);
    reassigned.batchBegins(batch(0, 0, 99), false);
    reassigned.forgetPositions();
    assert.deepEqual(reassigned.batchBegins(batch(0, 500, 600), false), [], 'another member committed up to 500 meanwhile');
  });

  it('moves on past a batch with no first offset (all of it compacted away before the fetched offset)', () => {
    const expired = new ExpiredOffsets(() => undefined);
    expired.batchBegins(batch(0, 0, 99), false);
    assert.deepEqual(expired.batchBegins(batch(0, null, 100), false), []);
    assert.deepEqual(expired.batchBegins(batch(0, 101, 110), false), []);
  });
});
