import { CloudTrailClient, InvalidNextTokenException, LookupEventsCommand, type Event } from '@aws-sdk/client-cloudtrail';
import { RateLimiter } from 'limiter';
import { describeError, isRetriable } from '../shared/errors.js';
import { scopeLabels, type AwsScope } from '../shared/aws-scope.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import { createRetry } from '../shared/retry.js';

const THROTTLED = new Set(['ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded']);

/**
 * LookupEvents for the API Gateway event source over a time range, every page, at most `callsPerSecond`
 * calls (a token bucket per account and region) and with backoff when CloudTrail throttles anyway.
 */
export function createCloudTrailReader(deps: { client: CloudTrailClient; scope: AwsScope; callsPerSecond: number; logger: Logger; metrics: Metrics; signal?: AbortSignal }) {
  const { client, metrics } = deps;
  const labels = scopeLabels(deps.scope);
  const log = deps.logger.child({ component: 'cloudtrail-reader', ...deps.scope });
  const bucket = new RateLimiter({ tokensPerInterval: deps.callsPerSecond, interval: 'second' });
  const retry = createRetry({
    retries: 10,
    initialDelayMs: 500,
    maxDelayMs: 30_000,
    signal: deps.signal,
    shouldRetry: (error) => THROTTLED.has((error as Error).name) || isRetriable(error),
    onRetry: (error, attempt, delayMs) => {
      if (THROTTLED.has((error as Error).name)) metrics.awsThrottled.inc({ ...labels, operation: 'LookupEvents' });
      // The name says throttling; for anything else (an endpoint that is not CloudTrail answers HTML) the message says what.
      log.warn({ attempt, delayMs, err: `${(error as Error).name}: ${describeError(error)}` }, 'LookupEvents failed; backing off');
    },
  });

  async function page(input: { start: Date; end: Date; nextToken?: string }) {
    return retry(async () => {
      await bucket.removeTokens(1);
      metrics.awsCalls.inc({ ...labels, operation: 'LookupEvents' });
      return client.send(new LookupEventsCommand({
        LookupAttributes: [{ AttributeKey: 'EventSource', AttributeValue: 'apigateway.amazonaws.com' }],
        StartTime: input.start,
        EndTime: input.end,
        MaxResults: 50,
        NextToken: input.nextToken,
      }));
    });
  }

  return {
    /**
     * The events of the range, newest first as CloudTrail returns them; `onPage` sees progress, and paging stops
     * early once `enough` says so for a page.
     */
    async lookup(range: { start: Date; end: Date }, onPage?: (events: Event[]) => void, enough?: (page: Event[]) => boolean): Promise<Event[]> {
      for (let attempt = 0; ; attempt++) {
        const events: Event[] = [];
        let nextToken: string | undefined;
        try {
          do {
            const result = await page({ ...range, nextToken });
            events.push(...(result.Events ?? []));
            onPage?.(result.Events ?? []);
            nextToken = enough?.(result.Events ?? []) ? undefined : result.NextToken;
          } while (nextToken && !deps.signal?.aborted);
          return events;
        } catch (error) {
          // A token can expire during a long catch-up: read the range again (events are deduplicated by id).
          if (!(error instanceof InvalidNextTokenException) || attempt >= 2) throw error;
          log.warn('LookupEvents refused its NextToken; reading the range again');
        }
      }
    },
  };
}
