import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Admin, ITopicConfig, ITopicMetadata } from 'kafkajs';
import { ensureTopics } from '../../services/shared/kafka.js';

/**
 * An admin client over a broker that has just started: after creating a topic it answers metadata requests with
 * UNKNOWN_TOPIC_OR_PARTITION (what kafkajs's own leader wait gives up on), then with partitions not yet led.
 */
function freshBrokerAdmin(unknownAnswers: number, leaderlessAnswers: number) {
  const created: ITopicConfig[] = [];
  let metadataCalls = 0;
  const admin = {
    listTopics: async () => created.map(({ topic }) => topic),
    createTopics: async ({ topics }: { topics: ITopicConfig[] }) => {
      created.push(...topics);
      return true;
    },
    fetchTopicMetadata: async ({ topics }: { topics: string[] }): Promise<{ topics: ITopicMetadata[] }> => {
      metadataCalls += 1;
      if (metadataCalls <= unknownAnswers) {
        throw Object.assign(new Error('This server does not host this topic-partition'), { retriable: true, type: 'UNKNOWN_TOPIC_OR_PARTITION' });
      }
      const leader = metadataCalls <= unknownAnswers + leaderlessAnswers ? -1 : 1;
      return {
        topics: topics.map((name) => ({
          name,
          partitions: Array.from({ length: created.find(({ topic }) => topic === name)!.numPartitions! }, (_, partitionId) => ({
            partitionErrorCode: 0, partitionId, leader, replicas: [1], isr: [1],
          })),
        })),
      };
    },
  };
  return { admin: admin as unknown as Admin, created };
}

describe('creating the topics', () => {
  it('waits out a broker that does not know a topic it has just created, then reports its partitions', async () => {
    const { admin, created } = freshBrokerAdmin(2, 1);
    assert.deepEqual(await ensureTopics(admin, 'changes', 6), { partitions: 6, created: ['changes', 'changes.dlq'] });
    assert.deepEqual(created.map(({ topic, numPartitions }) => [topic, numPartitions]), [['changes', 6], ['changes.dlq', 1]]);
  });

  it('creates nothing that exists already', async () => {
    const { admin, created } = freshBrokerAdmin(0, 0);
    await ensureTopics(admin, 'changes', 6);
    assert.deepEqual(await ensureTopics(admin, 'changes', 6), { partitions: 6, created: [] });
    assert.equal(created.length, 2);
  });
});
