import { isRetriable } from './errors.js';

export interface RetryOptions {
  /** Attempts after the first one. @default 8 */
  retries?: number;
  /** First delay in milliseconds. @default 200 */
  initialDelayMs?: number;
  /** Upper bound of one delay in milliseconds. @default 30000 */
  maxDelayMs?: number;
  /** Growth of the delay per attempt. @default 2 */
  factor?: number;
  /** Which errors are worth another attempt. @default isRetriable */
  shouldRetry?: (error: unknown) => boolean;
  /** Called before each wait, e.g. to log. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Stops waiting early when aborted. */
  signal?: AbortSignal;
}

export class RetriesExhaustedError extends Error {
  constructor(readonly attempts: number, cause: unknown) {
    super(`gave up after ${attempts} attempts: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'RetriesExhaustedError';
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

type BackoffOptions = Pick<RetryOptions, 'initialDelayMs' | 'maxDelayMs' | 'factor'>;

/** The wait before attempt `attempt + 1`: exponential up to a ceiling, with jitter over its upper half. */
export function backoffDelay(attempt: number, { initialDelayMs = 200, maxDelayMs = 30_000, factor = 2 }: BackoffOptions = {}): number {
  const ceiling = Math.min(maxDelayMs, initialDelayMs * factor ** attempt);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** Exponential backoff with jitter; the last error is wrapped when the attempts run out. */
export function createRetry(options: RetryOptions = {}) {
  const { retries = 8, shouldRetry = isRetriable } = options;
  return async function retry<T>(operation: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await operation(attempt);
      } catch (error) {
        if (attempt >= retries || !shouldRetry(error) || options.signal?.aborted) {
          if (attempt === 0 || !shouldRetry(error)) throw error;
          throw new RetriesExhaustedError(attempt + 1, error);
        }
        const delayMs = backoffDelay(attempt, options);
        options.onRetry?.(error, attempt + 1, delayMs);
        await sleep(delayMs, options.signal);
      }
    }
  };
}
