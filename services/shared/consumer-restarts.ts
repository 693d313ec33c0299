import type { Admin } from 'kafkajs';
import { describeError, isRetriable } from './errors.js';
import type { Logger } from './logger.js';
import { backoffDelay, sleep } from './retry.js';

const BACKOFF = { initialDelayMs: 1000, maxDelayMs: 30_000 };
/** A consumer that ran this long since its last restart starts the backoff afresh. */
const QUIET_RESET_MS = 2 * BACKOFF.maxDelayMs;

export interface ConsumerRestartDeps {
  admin: Admin;
  topic: string;
  logger: Logger;
  /** Aborted when the consumer's owner stops: a restart waiting out its backoff is called off. */
  signal: AbortSignal;
  /** Called for each restart, with why: to count it. */
  onRestart?: (reason: 'topic-missing' | 'failure') => void;
}

/**
 * What to do before kafkajs restarts a consumer (the sink's, tail's) after a failure kafkajs stopped retrying.
 * kafkajs restarts it without limit, 200 ms after a failure that came at once: one that comes back at once (its topic
 * deleted, say) restarted it five times a second, each time with an error in the log. Here each restart waits out a
 * backoff (1 s, doubling to 30 s), and the log says why. A deleted topic's committed offsets go with it (the broker
 * drops them), so once the topic is made again the consumer reads it from its beginning.
 */
export function createConsumerRestarts(deps: ConsumerRestartDeps) {
  const { admin, topic, logger: log, signal } = deps;
  let failures = 0;
  let lastRestartAt = -Infinity;

  /** True only when the broker answers that the topic does not exist. */
  const topicMissing = () => admin.listTopics().then((topics) => !topics.includes(topic), () => false);

  return {
    /** Waits out the backoff and says why the consumer failed; true to restart it, false once its owner stops. */
    async beforeRestart(error: Error): Promise<boolean> {
      if (Date.now() - lastRestartAt > QUIET_RESET_MS) failures = 0;
      const delayMs = backoffDelay(failures++, BACKOFF);
      const seconds = (delayMs / 1000).toFixed(1);
      if (await topicMissing()) {
        deps.onRestart?.('topic-missing');
        log.error({ topic, failures, delayMs }, `the topic ${topic} does not exist (deleted?): nothing is consumed until it exists again; looking again in ${seconds} s`);
      } else {
        deps.onRestart?.('failure');
        log.error({ err: describeError(error), retriable: isRetriable(error), failures, delayMs }, `the consumer failed; restarting it in ${seconds} s`);
      }
      await sleep(delayMs, signal);
      lastRestartAt = Date.now();
      return !signal.aborted;
    },
  };
}
