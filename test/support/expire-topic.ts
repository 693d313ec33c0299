/**
 * Deletes every record a topic holds now, as its retention would once they are old enough: `node --import tsx
 * test/support/expire-topic.ts TOPIC`. A process of its own, for a test whose process (with the sink in it) holds
 * still meanwhile, so that the sink fetches none of them first.
 */
import { withAdmin } from '../../services/shared/kafka.js';
import { plainKafka } from './harness.js';

const [topic] = process.argv.slice(2);
if (!topic) throw new Error('usage: expire-topic.ts TOPIC');
await withAdmin(plainKafka(), async (admin) => {
  await admin.fetchTopicMetadata({ topics: [topic] }); // kafkajs's deleteTopicRecords needs it loaded
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.deleteTopicRecords({ topic, partitions: ends.map(({ partition, high }) => ({ partition, offset: high })) });
});
