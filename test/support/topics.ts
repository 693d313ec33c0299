import { Kafka, logLevel } from 'kafkajs';

/**
 * Deletes every topic whose name starts with `prefix`: a run's topic with its dead letters and checkpoints. Tests
 * and benchmarks name theirs uniquely, and the local broker would otherwise keep every one of them, run after run.
 */
export async function deleteTopicsStartingWith(brokers: string[], prefix: string): Promise<void> {
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}
