import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExpiredOffsets } from '../../services/sink/expired-offsets.js';

describe('the offsets the retention deleted, said once each', () => {
  it('says a range once, however many times it is found', () => {
    const expired = new ExpiredOffsets();
    assert.deepEqual(expired.note(0, 10, 20), [{ from: 10, to: 20 }]);
    assert.deepEqual(expired.note(0, 10, 20), []);
    assert.deepEqual(expired.note(0, 12, 20), []);
  });

  it('says only what a later range adds, before the range said and after it', () => {
    const expired = new ExpiredOffsets();
    expired.note(0, 10, 20);
    // A batch found 10-19 skipped; the start-over then finds what the sink had read and not written, from 4.
    assert.deepEqual(expired.note(0, 4, 20), [{ from: 4, to: 10 }]);
    // The retention went on while the sink could not write: from what it last wrote to the partition's first now.
    assert.deepEqual(expired.note(0, 4, 30), [{ from: 20, to: 30 }]);
    assert.deepEqual(expired.note(0, 2, 35), [{ from: 2, to: 4 }, { from: 30, to: 35 }]);
  });

  it('keeps partitions apart, and says a range apart from the last one as it is', () => {
    const expired = new ExpiredOffsets();
    expired.note(0, 10, 20);
    assert.deepEqual(expired.note(1, 10, 20), [{ from: 10, to: 20 }]);
    assert.deepEqual(expired.note(0, 50, 60), [{ from: 50, to: 60 }]);
    assert.deepEqual(expired.note(0, 55, 70), [{ from: 60, to: 70 }]);
  });

  it('says nothing of an empty range, or of a partition with no committed offset (-1)', () => {
    const expired = new ExpiredOffsets();
    assert.deepEqual(expired.note(0, 20, 20), []);
    assert.deepEqual(expired.note(0, 30, 20), []);
    assert.deepEqual(expired.note(0, -1, 20), []);
  });

  it('forgets what it said once cleared (the topic made again numbers its offsets anew)', () => {
    const expired = new ExpiredOffsets();
    expired.note(0, 10, 20);
    expired.clear();
    assert.deepEqual(expired.note(0, 10, 20), [{ from: 10, to: 20 }]);
  });
});
