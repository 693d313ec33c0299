import { pino, type Logger } from 'pino';

export type { Logger };

/** The root logger: JSON lines on stderr, so stdout stays for what a command prints (or to `destination`). */
export function createLogger(level: string, destination: { write(line: string): void } = pino.destination(2)): Logger {
  return pino({ level, base: { app: 'apigw-stream' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
