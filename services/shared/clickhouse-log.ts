import { ClickHouseLogLevel, type ErrorLogParams, type Logger as ClientLogger, type LogParams } from '@clickhouse/client';
import { describeError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * The ClickHouse client's own log lines, as debug lines of ours (component `clickhouse-client`); off without a logger
 * or below debug. Left to itself the client prints multi-line text on stderr, a configuration hint on every start
 * against a server and each failed request beside the one line a command prints about it: every failure it logs is
 * also thrown to whoever made the request, and reported there once.
 */
export function clickHouseClientLog(logger: Logger | undefined): { LoggerClass?: new () => ClientLogger; level: ClickHouseLogLevel } {
  if (!logger?.isLevelEnabled('debug')) return { level: ClickHouseLogLevel.OFF };
  const log = logger.child({ component: 'clickhouse-client' });
  const write = (level: 'trace' | 'debug', { module, message, args, err }: LogParams & { err?: Error }) =>
    log[level]({ module, ...args, ...(err ? { err: describeError(err) } : {}) }, message);
  class ToOurLog implements ClientLogger {
    trace(params: LogParams) { write('trace', params); }
    debug(params: LogParams) { write('debug', params); }
    info(params: LogParams) { write('debug', params); }
    warn(params: LogParams & { err?: Error }) { write('debug', params); }
    error(params: ErrorLogParams) { write('debug', params); }
  }
  return { LoggerClass: ToOurLog, level: logger.isLevelEnabled('trace') ? ClickHouseLogLevel.TRACE : ClickHouseLogLevel.DEBUG };
}
