import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Admin, Consumer, TopicPartitionOffsetAndMetadata } from 'kafkajs';
import { deferred } from '../../services/shared/deferred.js';
import { createLogger } from '../../services/shared/logger.js';
import { createMetrics } from '../../services/shared/metrics.js';
import { sleep } from '../../services/shared/retry.js';
import { createOffsetCommits } from '../../services/sink/offset-commits.js';

const TOPIC = 'changes';

/** Offset commits over a group held in memory: `requests` is every commit request the broker got. */
function commitsOverGroup() {
  const group = new Map<number, string>();
  const requests: { partition: number; offset: string }[][] = [];
  const consumer = {
    commitOffsets: async (offsets: TopicPartitionOffsetAndMetadata[]) => {
      requests.push(offsets.map(({ partition, offset }) => ({ partition, offset })));
      for (const { partition, offset } of offsets) group.set(partition, offset);
    },
  } as unknown as Consumer;
  const admin = {
    fetchOffsets: async () => [{ topic: TOPIC, partitions: [...group].map(([partition, offset]) => ({ partition, offset })) }],
  } as unknown as Admin;
  const commits = createOffsetCommits({
    topic: TOPIC, groupId: 'sink', admin: () => admin, consumer: () => consumer, onCommitted: () => undefined,
    metrics: createMetrics(), log: createLogger('silent'),
  });
  return { commits, group, requests };
}

describe('offsets committed once their rows are written', () => {
  it('commits past the last offset only once its write settles', async () => {
    const { commits, requests } = commitsOverGroup();
    const write = deferred();
    const recorded = commits.whenWritten(0, '41', write.promise, true);
    await sleep(10);
    assert.deepEqual(requests, [], 'nothing before the rows are written');
    write.resolve();
    await recorded;
    assert.deepEqual(requests, [[{ partition: 0, offset: '42' }]]);
  });

  it('commits nothing of a write that failed', async () => {
    const { commits, requests } = commitsOverGroup();
    const write = deferred();
    const recorded = commits.whenWritten(0, '41', write.promise, true);
    write.reject(new Error('table detached'));
    await recorded;
    await commits.drain();
    assert.deepEqual(requests, []);
  });

  it('carries every partition written within the interval in one request, each at its furthest offset', async () => {
    const { commits, requests } = commitsOverGroup();
    await commits.whenWritten(0, '9', Promise.resolve());
    await commits.whenWritten(1, '19', Promise.resolve());
    await commits.whenWritten(0, '29', Promise.resolve());
    assert.deepEqual(requests, [], 'waiting for the interval');
    await sleep(300);
    assert.deepEqual(requests, [[{ partition: 0, offset: '30' }, { partition: 1, offset: '20' }]]);
  });

  it('commits nothing once the group\'s offsets are found below its own (the topic made again), until it starts afresh', async () => {
    const { commits, group, requests } = commitsOverGroup();
    await commits.whenWritten(0, '99', Promise.resolve(), true);
    group.set(0, '0'); // the topic deleted and made again: the broker dropped the group's offsets
    await commits.whenWritten(0, '149', Promise.resolve(), true);
    assert.equal(commits.topicRemade, true);
    assert.deepEqual(requests, [[{ partition: 0, offset: '100' }]], 'a commit past the new topic\'s events unread would skip them');
    await commits.dropUncommitted();
    commits.startAfresh();
    assert.equal(commits.topicRemade, false);
    await commits.whenWritten(0, '4', Promise.resolve(), true);
    assert.deepEqual(requests.at(-1), [{ partition: 0, offset: '5' }]);
  });
});
