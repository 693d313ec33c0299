import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IntegrationChange } from '../../services/shared/integration-model.js';
import { ReadTracker } from '../../services/sink/read-tracker.js';

/** An event of read `readId` about integration `arn`; markers (op SNAPSHOT_COMPLETE) close the read. */
function event(readId: string, arn: string, overrides: Partial<IntegrationChange> = {}): IntegrationChange {
  return {
    event_id: `${readId}-${arn}`, op: 'SNAPSHOT', event_time: 0, observed_at: 0,
    source: { type: 'SNAPSHOT', snapshot_id: readId, cloudtrail_event_id: null, cloudtrail_event_name: null, principal_arn: null, source_ip: null, user_agent: null },
    account_id: '123456789012', region: 'eu-west-1', api_id: 'a', integration_id: arn, arn, api: null, after: null,
    snapshot: { snapshot_id: readId, started_at: 0, api_ids: [], integration_count: 0 },
    ...overrides,
  };
}

/** What the marker of `readId` (at `offset`) finds its read saw, sorted; the marker is then applied. */
const seenBy = (tracker: ReadTracker, partition: number, readId: string, overrides: Partial<IntegrationChange> = {}, offset = 100) => {
  const marker = event(readId, '', { op: 'SNAPSHOT_COMPLETE', ...overrides });
  const seen = tracker.seenBy(partition, marker);
  if (typeof seen !== 'string') tracker.complete(partition, marker, offset);
  return typeof seen === 'string' ? seen : [...seen].sort();
};

/** A tracker that applied each partition's first offset: it sees every read whole. */
function fromTheStart(): ReadTracker {
  const tracker = new ReadTracker();
  for (const partition of [0, 1]) tracker.consumed(partition, 0, 0);
  return tracker;
}

describe('what each complete read saw', () => {
  it('keeps reads apart when their events interleave in one partition', () => {
    const tracker = fromTheStart();
    const apiRead = { source: { ...event('x', 'x').source, type: 'CLOUDTRAIL' as const, snapshot_id: 'api-read' } };
    tracker.see(0, event('snap', 'i1'), 'i1');
    tracker.see(0, event('api-read', 'i2', apiRead), 'i2');
    tracker.see(0, event('snap', 'i3'), 'i3');
    tracker.see(0, event('api-read', 'i4', apiRead), 'i4');
    assert.deepEqual(seenBy(tracker, 0, 'api-read'), ['i2', 'i4']);
    assert.deepEqual(seenBy(tracker, 0, 'snap'), ['i1', 'i3']);
  });

  it('keeps regions and partitions of one read apart', () => {
    const tracker = fromTheStart();
    tracker.see(0, event('snap', 'i1'), 'i1');
    tracker.see(0, event('snap', 'i2', { region: 'us-east-1' }), 'i2');
    tracker.see(1, event('snap', 'i3'), 'i3');
    tracker.see(0, event('snap', 'i4'), 'i4');
    assert.deepEqual(seenBy(tracker, 0, 'snap'), ['i1', 'i4']);
    assert.deepEqual(seenBy(tracker, 0, 'snap', { region: 'us-east-1' }), ['i2']);
    assert.deepEqual(seenBy(tracker, 1, 'snap'), ['i3']);
  });

  it('a marker that comes again before its offset is committed finds its read complete, however much of the read came again', () => {
    const tracker = fromTheStart();
    tracker.see(0, event('snap', 'i1'), 'i1');
    tracker.see(0, event('snap', 'i2'), 'i2');
    assert.deepEqual(seenBy(tracker, 0, 'snap', {}, 7), ['i1', 'i2']);
    // Consumed again from a committed offset between the read's two events (a start-over after a failed write).
    tracker.see(0, event('snap', 'i2'), 'i2');
    assert.equal(seenBy(tracker, 0, 'snap', {}, 7), 'completed', 'deleting what i2 alone did not see would delete i1');
    tracker.committed(0, 7);
    assert.equal(seenBy(tracker, 0, 'snap', {}, 7), 'completed', 'the marker at 7 is not committed until the offset passes it');
  });

  it('starts empty for a read of the same key once the marker before it is committed', () => {
    const tracker = fromTheStart();
    tracker.see(0, event('snap', 'i1'), 'i1');
    assert.deepEqual(seenBy(tracker, 0, 'snap', {}, 7), ['i1']);
    tracker.committed(0, 8);
    tracker.see(0, event('snap', 'i2'), 'i2');
    assert.deepEqual(seenBy(tracker, 0, 'snap', {}, 12), ['i2']);
  });

  it('abandons a snapshot when the next one of its scope begins, and records nothing more for it', () => {
    const tracker = fromTheStart();
    tracker.see(0, event('old', 'i1'), 'i1');
    tracker.see(0, event('new', 'i2'), 'i2');
    tracker.see(0, event('old', 'i3'), 'i3');
    tracker.see(0, event('new', 'i4'), 'i4');
    assert.equal(seenBy(tracker, 0, 'old'), 'abandoned');
    assert.deepEqual(seenBy(tracker, 0, 'new'), ['i2', 'i4']);
  });

  it('does not count a deletion as seen', () => {
    const tracker = fromTheStart();
    tracker.see(0, event('snap', 'i1'), 'i1');
    tracker.see(0, event('snap', 'i2', { op: 'DELETE' }), 'i2');
    assert.deepEqual(seenBy(tracker, 0, 'snap'), ['i1']);
  });

  it('a marker of a read that began before this instance\'s first message of the partition deletes nothing', () => {
    const started = { snapshot: { snapshot_id: 'snap', started_at: 1_000, api_ids: [], integration_count: 0 } };
    const joined = new ReadTracker();
    joined.consumed(0, 50, 2_000);
    joined.consumed(0, 10, 500);
    joined.see(0, event('snap', 'i1', started), 'i1');
    assert.equal(seenBy(joined, 0, 'snap', started), 'joined-midway', 'the read began before the first message applied; later ones do not count');

    const before = new ReadTracker();
    before.consumed(0, 50, 500);
    before.see(0, event('snap', 'i1', started), 'i1');
    assert.deepEqual(seenBy(before, 0, 'snap', started), ['i1']);

    before.clear();
    before.see(0, event('snap', 'i1', started), 'i1');
    assert.equal(seenBy(before, 0, 'snap', started), 'joined-midway', 'after clear() nothing is known of what came first');
    assert.equal(before.hasConsumed(0), false);
  });
});
