import { describeError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * A send to a topic that does not exist waits for it without end (kafkajs retries it, and auto-creation is off), and
 * so would a snapshot, a listener poll or a sink's dead-letter send under way when its topic is deleted, and a stop
 * request after it; a sink's consumer waits for its topic to come back. While they run, their topics are checked
 * every `everyMs` and made again when missing: the waiting send then goes through. Returns a function that stops
 * the checks.
 */
export function keepTopics({ ensure, logger, everyMs = 10_000 }: { ensure: () => Promise<string[]>; logger: Logger; everyMs?: number }): () => void {
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return; // with the broker away, one check can take longer than the interval
    checking = true;
    ensure().then(
      (made) => { if (made.length > 0) logger.warn({ topics: made }, 'topics did not exist (deleted?): made them again'); },
      (error: unknown) => logger.debug({ err: describeError(error) }, 'could not check the topics; the next check tries again'),
    ).finally(() => { checking = false; });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
