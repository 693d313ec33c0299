import { Command, Option } from 'commander';
import type { KafkaMessage } from 'kafkajs';
import type { ChangeCodec } from '../services/shared/codec.js';
import { loadConfig } from '../services/shared/config.js';
import { ApigwError, PoisonMessageError, describeError } from '../services/shared/errors.js';
import type { IntegrationChange, IntegrationState } from '../services/shared/integration-model.js';
import { createLogger } from '../services/shared/logger.js';
import { fieldChanges } from '../services/query/field-changes.js';
import { parseTimeInput } from '../services/query/time-input.js';
import { VALUE_OMITTED } from '../services/sink/dead-letters.js';

interface TailOptions {
  fromBeginning?: boolean;
  since?: string;
  deadLetters?: boolean;
  account?: string;
  region?: string;
  api?: string;
  integration?: string;
  changesOnly?: boolean;
  json?: boolean;
}

type ChangeFilters = Pick<TailOptions, 'account' | 'region' | 'api' | 'integration' | 'changesOnly'>;

const TAIL_GROUP_PREFIX = 'apigw-stream-tail-';

/** Whether `after` is what this tail last saw of its integration: a re-read that changes nothing. */
const unchanged = (previous: IntegrationState | null, after: IntegrationState | null) =>
  (previous === null || after === null ? previous === after : fieldChanges(previous, after).length === 0);

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

/** One line per dead-lettered message: why, and where it came from (its bytes are not decodable, so not shown). */
function describeDeadLetter(message: KafkaMessage, partition: number, json: boolean): string {
  const header = (name: string) => message.headers?.[name]?.toString() ?? null;
  const entry = {
    partition,
    offset: message.offset,
    dead_lettered_at: new Date(Number(message.timestamp)).toISOString(),
    reason: header('dlq.reason'),
    error: header('dlq.error'),
    from: { topic: header('dlq.topic'), partition: Number(header('dlq.partition')), offset: header('dlq.offset') },
    key_bytes: message.key?.length ?? 0,
    value_bytes: message.value?.length ?? 0,
    /** Too large for the dead-letter topic: the value's size, left at its origin. */
    value_omitted_bytes: header(VALUE_OMITTED) === null ? null : Number(header(VALUE_OMITTED)),
    redrive_attempts: Number(header('dlq.redrive-attempts') ?? 0),
  };
  if (json) return JSON.stringify(entry);
  const attempts = entry.redrive_attempts > 0 ? `, still failing after ${entry.redrive_attempts} redrive(s)` : '';
  const size = entry.value_omitted_bytes === null ? `${entry.value_bytes} bytes` : `value of ${entry.value_omitted_bytes} bytes left at its origin`;
  return `${entry.dead_lettered_at} DEAD-LETTER ${entry.reason} from ${entry.from.topic} partition ${entry.from.partition} offset ${entry.from.offset} (${size}${attempts}): ${entry.error}`;
}

/** Decodes each change and prints it, when it passes the filters; markers once each (every partition carries a copy). */
function changePrinter(codec: ChangeCodec, filters: ChangeFilters, json: boolean) {
  // Per ARN, the last after-image this tail printed: what the next event of that integration is compared with.
  const seen = new Map<string, IntegrationState | null>();
  const printedMarkers = new Set<string>();
  return async (message: KafkaMessage, partition: number) => {
    let change: IntegrationChange;
    try {
      change = (await codec.decode(message.key, message.value)).value;
    } catch (error) {
      if (!(error instanceof PoisonMessageError)) throw error;
      process.stderr.write(`partition ${partition} offset ${message.offset}: ${describeError(error)}\n`);
      return;
    }
    if (filters.account && change.account_id !== filters.account) return;
    if (filters.region && change.region !== filters.region) return;
    if (filters.api && change.api_id !== filters.api) return;
    if (filters.integration && change.integration_id !== filters.integration) return;
    if (change.op === 'SNAPSHOT_COMPLETE') {
      if (filters.changesOnly || printedMarkers.has(change.event_id)) return;
      printedMarkers.add(change.event_id);
    }
    const previous = seen.get(change.arn);
    if (filters.changesOnly && previous !== undefined && unchanged(previous, change.after)) return;
    process.stdout.write(`${describe(change, previous, partition, json)}\n`);
    if (change.op !== 'SNAPSHOT_COMPLETE') seen.set(change.arn, change.after);
  };
}

export function tailCommand(): Command {
  return new Command('tail')
    .description('Decode and print change events as they arrive (key, op, time, source, principal, and the changed fields or the after-image)')
    .option('--from-beginning', 'start at the oldest event on the topic instead of new ones')
    .addOption(new Option('--since <time>', 'start at the first message written to the topic at or after this time: ISO 8601 (UTC unless it names an offset), '
      + '"now", or a duration ago ("2h ago")').conflicts('fromBeginning'))
    .option('--account <id>', 'only events of this AWS account')
    .option('--region <region>', 'only events of this region')
    .option('--api <api-id>', 'only events of this API (AWS ApiId)')
    .option('--integration <integration-id>', 'only events of this integration')
    .option('--changes-only', 'leave out completion markers, and events that change nothing this tail saw of their integration (a snapshot\'s '
      + 're-reads); an integration\'s first event is shown whole, with nothing to compare it with')
    .addOption(new Option('--dead-letters', 'print the dead-letter topic (<topic>.dlq) instead: why and where from, per message the sink could not decode')
      .conflicts(['account', 'region', 'api', 'integration', 'changesOnly']))
    .option('--json', 'one JSON object per line, for scripts')
    .action(async (opts: TailOptions) => {
      const config = loadConfig();
      const since = opts.since === undefined ? undefined : parseTimeInput('--since', opts.since);
      // Loaded on use: every other command's start-up would pay for the Kafka and registry clients.
      const [{ checkKafka, checkRegistry }, { createChangeCodec }, { createKafka, dlqTopic }, { createConsumerRestarts }] = await Promise.all([
        import('./preflight.js'), import('../services/shared/codec.js'), import('../services/shared/kafka.js'), import('../services/shared/consumer-restarts.js'),
      ]);
      const topic = opts.deadLetters ? dlqTopic(config.topic) : config.topic;
      // A group of its own, so that every tail reads the whole topic; it commits nothing.
      const groupId = `${TAIL_GROUP_PREFIX}${process.pid}-${Date.now()}`;
      await checkKafka(config.kafkaBrokers, {
        security: config.kafkaSecurity,
        use: { topics: [{ name: topic, variable: 'APIGW_TOPIC', creates: false }], group: { id: groupId, variable: 'KAFKA_SASL_USERNAME', prefix: TAIL_GROUP_PREFIX } },
      });
      // Dead letters are shown without decoding: they are there because they could not be decoded.
      if (!opts.deadLetters) await checkRegistry(config.schemaRegistryUrl, config.schemaRegistryAuth);
      const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
      const json = opts.json === true;
      const print = opts.deadLetters
        ? async (message: KafkaMessage, partition: number) => { process.stdout.write(`${describeDeadLetter(message, partition, json)}\n`); }
        : changePrinter(createChangeCodec({ registryUrl: config.schemaRegistryUrl, registryAuth: config.schemaRegistryAuth, topic: config.topic }), opts, json);
      const kafka = createKafka({ brokers: config.kafkaBrokers, security: config.kafkaSecurity, clientId: 'apigw-stream-tail', logger });
      const admin = kafka.admin();
      const stopping = new AbortController();
      const restarts = createConsumerRestarts({ admin, topic, logger, signal: stopping.signal });
      const consumer = kafka.consumer({
        groupId,
        readUncommitted: false,
        retry: { restartOnFailure: (error) => restarts.beforeRestart(error) },
      });
      await admin.connect();
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: opts.fromBeginning === true });
      const stop = async () => {
        stopping.abort();
        await consumer.disconnect();
        await admin.disconnect();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // kafkajs restarts a consumer after the errors it retries; after another (say, a Read the brokers refuse) it
      // leaves it stopped, and the tail would wait for messages that never come.
      const stoppedForGood = new Promise<Error>((resolve) => consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart && !stopping.signal.aborted) resolve(payload.error);
      }));
      await consumer.run({
        autoCommit: false,
        eachMessage: ({ message, partition }) => print(message, partition),
      });
      // By each message's Kafka timestamp (when it was produced), not by the event's own times.
      if (since !== undefined) {
        for (const { partition, offset } of await admin.fetchTopicOffsetsByTimestamp(topic, since)) consumer.seek({ topic, partition, offset });
      }
      const error = await stoppedForGood;
      await admin.disconnect();
      throw new ApigwError(`tail stopped consuming ${topic}: ${describeError(error)}`, { cause: error });
    });
}
