import { Command } from 'commander';
import { loadConfig } from '../services/shared/config.js';
import { PoisonMessageError, describeError } from '../services/shared/errors.js';
import type { IntegrationChange, IntegrationState } from '../services/shared/integration-model.js';
import { createLogger } from '../services/shared/logger.js';
import { fieldChanges } from '../services/query/field-changes.js';

interface TailOptions {
  fromBeginning?: boolean;
  api?: string;
  integration?: string;
  json?: boolean;
}

const short = (value: unknown) => {
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
};

/** One line per event: what changed since the last event of that integration this tail saw, else the after-image. */
function describe(change: IntegrationChange, previous: IntegrationState | null | undefined, partition: number, json: boolean): string {
  const changes = change.after && previous !== undefined ? fieldChanges(previous, change.after) : undefined;
  if (json) {
    const { after, ...rest } = change;
    return JSON.stringify({ partition, ...rest, ...(changes ? { changes } : { after }) });
  }
  const time = new Date(change.event_time).toISOString();
  const who = change.source.principal_arn ?? (change.source.type === 'SNAPSHOT' ? `snapshot ${change.source.snapshot_id}` : '');
  const head = `${time} ${change.op.padEnd(17)} ${change.region} ${change.api_id}/${change.integration_id || '*'} ${change.source.cloudtrail_event_name ?? change.source.type} ${who}`;
  if (change.op === 'SNAPSHOT_COMPLETE') return `${head} (scope read completely: ${change.snapshot?.integration_count} integrations)`;
  if (!change.after) return `${head} (deleted)`;
  if (changes) return `${head}\n    ${changes.length === 0 ? '(no change)' : changes.map((c) => `${c.field}: ${short(c.old)} -> ${short(c.new)}`).join('\n    ')}`;
  return `${head}\n    ${Object.entries(change.after).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${short(v)}`).join(' ')}`;
}

export function tailCommand(): Command {
  return new Command('tail')
    .description('Decode and print change events as they arrive (key, op, time, source, principal, and the changed fields or the after-image)')
    .option('--from-beginning', 'start at the oldest event on the topic instead of new ones')
    .option('--api <api-id>', 'only events of this API (AWS ApiId)')
    .option('--integration <integration-id>', 'only events of this integration')
    .option('--json', 'one JSON object per line, for scripts')
    .action(async (opts: TailOptions) => {
      const config = loadConfig();
      // Loaded on use: every other command's start-up would pay for the Kafka and registry clients.
      const [{ checkKafka, checkRegistry }, { createChangeCodec }, { createKafka }, { createConsumerRestarts }] = await Promise.all([
        import('./preflight.js'), import('../services/shared/codec.js'), import('../services/shared/kafka.js'), import('../services/shared/consumer-restarts.js'),
      ]);
      await checkKafka(config.kafkaBrokers, { security: config.kafkaSecurity, topic: config.topic });
      await checkRegistry(config.schemaRegistryUrl, config.schemaRegistryAuth);
      const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
      const codec = createChangeCodec({ registryUrl: config.schemaRegistryUrl, registryAuth: config.schemaRegistryAuth, topic: config.topic });
      const kafka = createKafka({ brokers: config.kafkaBrokers, security: config.kafkaSecurity, clientId: 'apigw-stream-tail', logger });
      const admin = kafka.admin();
      const stopping = new AbortController();
      const restarts = createConsumerRestarts({ admin, topic: config.topic, logger, signal: stopping.signal });
      const consumer = kafka.consumer({
        groupId: `apigw-stream-tail-${process.pid}-${Date.now()}`,
        readUncommitted: false,
        retry: { restartOnFailure: (error) => restarts.beforeRestart(error) },
      });
      const seen = new Map<string, IntegrationState | null>();
      const printedMarkers = new Set<string>();
      await admin.connect();
      await consumer.connect();
      await consumer.subscribe({ topic: config.topic, fromBeginning: opts.fromBeginning === true });
      const stop = async () => {
        stopping.abort();
        await consumer.disconnect();
        await admin.disconnect();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ message, partition }) => {
          let change: IntegrationChange;
          try {
            change = (await codec.decode(message.key, message.value)).value;
          } catch (error) {
            if (!(error instanceof PoisonMessageError)) throw error;
            process.stderr.write(`partition ${partition} offset ${message.offset}: ${describeError(error)}\n`);
            return;
          }
          if (opts.api && change.api_id !== opts.api) return;
          if (opts.integration && change.integration_id !== opts.integration) return;
          if (change.op === 'SNAPSHOT_COMPLETE') {
            if (printedMarkers.has(change.event_id)) return;
            printedMarkers.add(change.event_id);
          }
          process.stdout.write(`${describe(change, seen.get(change.arn), partition, opts.json === true)}\n`);
          if (change.op !== 'SNAPSHOT_COMPLETE') seen.set(change.arn, change.after);
        },
      });
    });
}
