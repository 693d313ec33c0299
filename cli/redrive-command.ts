import { Command } from 'commander';
import { loadConfig, type Config } from '../services/shared/config.js';
import { createLogger } from '../services/shared/logger.js';
import { createProgress, type Progress } from '../services/shared/progress.js';
import { emit, formatOption, type Format } from './output.js';

/** The redrive's position is its own consumer group's, beside the sink's. */
const redriveGroupId = (config: Config) => `${config.sinkGroupId}.redrive`;

export function redriveCommand(): Command {
  return new Command('redrive')
    .description('Send the dead letters that decode now (say, once the registry has their schema) back to the change topic: the listener\'s '
      + 'changes go back; a snapshot\'s events and markers are left to the next read of their scope; what still fails is dead-lettered again. '
      + 'Goes from where the last redrive stopped to the dead-letter topic\'s end; a row per outcome, with the dead letters the topic\'s retention '
      + 'deleted before a redrive read them (exit code 1 if some still fail or expired)')
    .option('--dry-run', 'decide and count only: send nothing, and leave the redrive\'s position where it is')
    .addOption(formatOption())
    .action(async (opts: { dryRun?: boolean; format: Format }) => {
      const config = loadConfig();
      // Loaded on use: every other command's start-up would pay for the Kafka and registry clients.
      const [{ checkKafka, checkRegistry }, { createChangeCodec }, { createKafka, dlqTopic }, { redriveDeadLetters }] = await Promise.all([
        import('./preflight.js'), import('../services/shared/codec.js'), import('../services/shared/kafka.js'), import('../services/sink/dead-letters.js'),
      ]);
      await checkKafka(config.kafkaBrokers, {
        security: config.kafkaSecurity,
        use: {
          topics: [{ name: dlqTopic(config.topic), variable: 'APIGW_TOPIC', creates: false }],
          writes: { name: config.topic, variable: 'APIGW_TOPIC', creates: false },
          group: { id: redriveGroupId(config), variable: 'APIGW_SINK_GROUP_ID' },
        },
      });
      await checkRegistry(config.schemaRegistryUrl, config.schemaRegistryAuth);
      // Its own log on stderr at the configured level: progress, and what it did, beside the table on stdout.
      const logger = createLogger(config.logLevel);
      // Made at the first batch, which knows how many dead letters there are.
      let progress: Progress | undefined;
      const onProgress = (done: number, total: number) => {
        progress ??= createProgress({
          interactive: process.stderr.isTTY === true, format: 'redrive |{bar}| {value}/{total} dead letters', total,
          log: (value) => logger.info({ done: value, total }, 'redrive progress'),
        });
        progress.update(done);
        // Done before the redrive's last log line, which would otherwise be written into the bar's line.
        if (done >= total) progress.stop();
      };
      const stopping = new AbortController();
      const stop = () => stopping.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const report = await redriveDeadLetters({
        kafka: createKafka({ brokers: config.kafkaBrokers, security: config.kafkaSecurity, clientId: 'apigw-stream-redrive', logger }),
        codec: createChangeCodec({ registryUrl: config.schemaRegistryUrl, registryAuth: config.schemaRegistryAuth, topic: config.topic }),
        topic: config.topic,
        groupId: redriveGroupId(config),
        dryRun: opts.dryRun === true,
        logger,
        signal: stopping.signal,
        onProgress,
      }).finally(() => progress?.stop());
      const rows = report.counts.map((count) => ({ ...count, goes_to: count.outcome === 'sent back' ? config.topic : count.outcome === 'still failing' ? report.deadLetterTopic : null }));
      emit(opts.format, { ...report, dryRun: opts.dryRun === true }, rows, ['outcome', 'reason', 'messages', 'goes_to', 'example'],
        `nothing to redrive in ${report.deadLetterTopic}`, 100);
      if (opts.dryRun) process.stderr.write('dry run: nothing was sent, and the redrive\'s position did not move\n');
      if (report.interrupted) process.stderr.write(`stopped after ${report.read} dead letters; the next redrive goes on from there\n`);
      if (report.interrupted || report.counts.some((count) => count.outcome === 'still failing' || count.outcome === 'expired')) process.exitCode = 1;
    });
}
