import { pino, type Logger } from 'pino';

export type { Logger };

/** The root logger: JSON lines on stderr, so stdout stays for what a command prints. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { app: 'apigw-stream' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}
