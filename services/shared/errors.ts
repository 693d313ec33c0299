/** The one error hierarchy of apigw-stream, and the table that classifies errors from outside. */

export interface ErrorContext {
  [key: string]: string | number | boolean | undefined;
}

export class ApigwError extends Error {
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(message: string, opts: { retriable?: boolean; cause?: unknown; context?: ErrorContext } = {}) {
    super(message, { cause: opts.cause });
    this.name = new.target.name;
    this.retriable = opts.retriable ?? false;
    this.context = opts.context ?? {};
  }
}

/** A setting is missing, malformed or contradictory. Never retriable: the program stops before writing. */
export class ConfigError extends ApigwError {
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`, { context: { variable } });
  }
}

/**
 * A dependency (Kafka, the registry, ClickHouse, AWS) does not answer or refuses. At start-up it stops the command;
 * while running, `retriable` says whether the same work may succeed later (it did not answer, rather than refused).
 */
export class DependencyError extends ApigwError {
  constructor(readonly dependency: string, problem: string, cause?: unknown, { retriable = false }: { retriable?: boolean } = {}) {
    super(`${dependency}: ${problem}`, { cause, retriable, context: { dependency } });
  }
}

/** A message on the topic cannot be decoded or applied; it goes to the dead-letter topic. */
export class PoisonMessageError extends ApigwError {
  constructor(readonly reason: string, message: string, cause?: unknown) {
    super(message, { cause, context: { reason } });
  }
}

const RETRIABLE_AWS_NAMES = new Set([
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ServiceUnavailableException',
  'InternalServerException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);
const RETRIABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET']);
// ClickHouse codes worth another try: timeouts, too many parts/queries, network, table being created/readonly.
const RETRIABLE_CLICKHOUSE_CODES = new Set(['159', '160', '164', '202', '209', '210', '241', '242', '252', '285', '319', '425', '999']);

interface ErrorLike {
  name?: string;
  code?: string | number;
  retriable?: boolean;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
  status?: number;
  /** The embedded engine's (chDB's) ClickHouse exception code; its `code` names chDB's own error class. */
  clickhouseCode?: number;
  cause?: unknown;
}

function classifyOne(err: ErrorLike): boolean | undefined {
  if (typeof err.retriable === 'boolean') return err.retriable;
  if (err.$retryable) return true;
  if (err.name && RETRIABLE_AWS_NAMES.has(err.name)) return true;
  const status = err.$metadata?.httpStatusCode ?? err.status;
  if (typeof status === 'number') return status === 429 || status >= 500;
  if (err.clickhouseCode !== undefined) return RETRIABLE_CLICKHOUSE_CODES.has(String(err.clickhouseCode));
  if (err.code !== undefined) {
    const code = String(err.code);
    if (RETRIABLE_NODE_CODES.has(code) || RETRIABLE_CLICKHOUSE_CODES.has(code)) return true;
  }
  return undefined;
}

/** True when trying the same operation again may succeed; walks the cause chain like Debezium's ErrorHandler. */
export function isRetriable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && typeof current === 'object' && depth < 8; depth++) {
    const verdict = classifyOne(current as ErrorLike);
    if (verdict !== undefined) return verdict;
    current = (current as ErrorLike).cause;
  }
  return false;
}

/**
 * An error in one line, for a log or a message: its first line. An HTML page in its place (a proxy's error page, or
 * a URL that is not the service's: clients make the body of a refusal the message) says only `<html>` there: its
 * title says what happened.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const title = /^\s*<(?:!doctype|html)\b[^]*?<title>([^<]*)<\/title>/i.exec(error.message)?.[1]?.trim();
  if (title) return `an HTML page answered: ${title}`;
  return error.message.split('\n')[0]!.trim() || error.name;
}
