import parseDuration from 'parse-duration';

export class QueryInputError extends Error {
  constructor(readonly input: string, message: string) {
    super(message);
    this.name = 'QueryInputError';
  }
}

const ISO_8601 = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$/;
const RELATIVE = /^(.+?)\s+ago$/i;

/**
 * A moment given by a user: ISO 8601 (a date, or a date and time; UTC unless it names an offset), `now`, or a
 * duration before now such as `2h ago`, `90 minutes ago`, `1d 6h ago`. Anything else is refused.
 */
export function parseTimeInput(what: string, text: string, now = Date.now()): number {
  const input = text.trim();
  if (input.toLowerCase() === 'now') return now;
  if (ISO_8601.test(input)) {
    const hasZone = /(Z|[+-]\d{2}:?\d{2})$/.test(input);
    const normalized = input.length === 10 ? `${input}T00:00:00Z` : `${input.replace(' ', 'T')}${hasZone ? '' : 'Z'}`;
    const time = Date.parse(normalized);
    if (!Number.isNaN(time)) return time;
  }
  const relative = RELATIVE.exec(input);
  if (relative && /^[\d\s.a-z]+$/i.test(relative[1]!)) {
    const duration = parseDuration(relative[1]!);
    if (duration !== null && duration !== undefined && Number.isFinite(duration) && duration >= 0) return now - duration;
  }
  throw new QueryInputError(text, `${what}: expected an ISO 8601 time (2026-11-25T10:00:00Z), "now" or a duration ago ("2h ago"), got "${text}"`);
}

/** An integration given as its ARN or as api-id/integration-id. */
export function parseIntegrationRef(text: string): { arn?: string; apiId?: string; integrationId?: string } {
  const input = text.trim();
  const arn = /^arn:aws[a-z-]*:apigateway:[a-z0-9-]+::\/apis\/([A-Za-z0-9]+)\/integrations\/([A-Za-z0-9]+)$/.exec(input);
  if (arn) return { arn: input };
  const pair = /^([A-Za-z0-9]+)\/([A-Za-z0-9]+)$/.exec(input);
  if (pair) return { apiId: pair[1], integrationId: pair[2] };
  throw new QueryInputError(text, `integration: expected an integration ARN or api-id/integration-id, got "${text}"`);
}

/** What a count (`--limit`) must be, said the same way by the CLI and the query API. */
export const COUNT_EXPECTED = 'expected a whole number, at least 1';
export const isCount = (value: number) => Number.isInteger(value) && value >= 1;
