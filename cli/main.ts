import { Command, CommanderError, Option } from 'commander';
import type { AwsScope } from '../services/shared/aws-scope.js';
import { describeConfig, loadConfig, unreadVariables, type Config } from '../services/shared/config.js';
import { ApigwError, ConfigError, DependencyError, describeError } from '../services/shared/errors.js';
import { createLogger, type Logger } from '../services/shared/logger.js';
import { VERSION } from '../services/shared/version.js';
import { stackDown, stackStatus, stackUp } from '../stack/index.js';
import { printTable } from './output.js';
import type { PipelineParts } from './pipeline.js';
import { accountsCommand } from './accounts-command.js';
import { queryCommand } from './query-command.js';
import { redriveCommand } from './redrive-command.js';
import { tailCommand } from './tail-command.js';
import { QueryInputError } from '../services/query/time-input.js';

const ENVIRONMENT_HELP = `
Configuration (environment variables):
  KAFKA_BROKERS                  comma-separated host:port           default 127.0.0.1:9092 (the local stack)
  KAFKA_SASL_MECHANISM           plain|scram-sha-256|scram-sha-512   default none
                                 or aws-msk-iam (MSK IAM, AWS credentials)
  KAFKA_SASL_USERNAME            SASL user name                      default none
  KAFKA_SASL_PASSWORD            SASL password (never printed)       default none
  KAFKA_AWS_REGION               MSK cluster's region (aws-msk-iam)  default AWS_REGION
  KAFKA_SSL                      true: TLS to the brokers            default false
  KAFKA_SSL_CA_FILE              PEM CAs of the brokers (TLS on)     default the system's CAs
  SCHEMA_REGISTRY_URL            registry URL (user:password@ ok)    default the local stack's Apicurio
  CLICKHOUSE_URL                 http(s)://server or chdb://PATH     default chdb://./data/clickhouse
  CLICKHOUSE_DATABASE            database of the tables              default apigw
  CLICKHOUSE_CA_FILE             PEM CAs of an https:// server       default the system's CAs
  CLICKHOUSE_CLUSTER             run DDL ON CLUSTER, Replicated*     default none
  AWS_REGIONS                    regions to watch (comma-separated)  default AWS_REGION
  AWS_ENDPOINT_URL               AWS endpoint override               default real AWS
  AWS_ACCOUNT_ID                 account id to report                default from STS
  AWS_ROLE_ARNS                  roles to assume, one per account    default none: the credentials' own account
  AWS_ORGANIZATION_ROLE          role to assume in every account     default none (needs organizations:ListAccounts)
  AWS_ORGANIZATION_REFRESH_SECONDS  seconds between account listings default 900
  AWS_ORGANIZATION_UNITS         accounts of these units (nested)    default none: the whole organization
  AWS_ORGANIZATION_EXCLUDE_ACCOUNTS  account ids not to read         default none
  AWS_ROLE_EXTERNAL_ID           external id given with each role    default none
  APIGW_TOPIC                    change topic                        default aws.apigatewayv2.integrations
  APIGW_TOPIC_PARTITIONS         partitions when creating the topic  default 6
  APIGW_SNAPSHOT_INTERVAL_SECONDS  seconds between snapshots         default 300
  APIGW_SNAPSHOT_CONCURRENCY     GetIntegrations calls per account   default 8 (in each region)
  APIGW_SNAPSHOT_REGIONS_AT_ONCE regions read at once (any account)  default 4
  APIGW_SINK_GROUP_ID            sink consumer group                 default apigw-stream-sink (redrive: <group>.redrive)
  APIGW_SINK_WRITE_RETRIES       write or read retries, start over   default 12
  APIGW_SINK_HELD_INTEGRATIONS   integrations held in memory at most default half the heap at 4 KiB each
  AWS_ENDPOINT_URL_CLOUDTRAIL    CloudTrail endpoint override        default AWS_ENDPOINT_URL
  APIGW_LISTENER_POLL_SECONDS    seconds between CloudTrail polls    default 30
  APIGW_LISTENER_LOOKBACK_HOURS  first start reads this far back     default 24 (max 2160)
  APIGW_LISTENER_OVERLAP_SECONDS each poll re-reads this much        default 900
  APIGW_LISTENER_SWEEP_SECONDS   seconds between full overlap reads  default 300
  APIGW_LISTENER_CALLS_PER_SECOND  LookupEvents calls per account     default 2 (in each region)
  APIGW_METRICS_PORT             serve /metrics and /healthz here    default off
  APIGW_METRICS_HOST             address they are served on          default 127.0.0.1 (0.0.0.0: every interface)
  APIGW_QUERY_PORT               sink's local query API port         default a free one
  LOG_LEVEL                      fatal|error|warn|info|debug|trace   default info
  APIGW_STACK_{KAFKA,KAFKA_CONTROLLER,KAFKA_SASL,KAFKA_SSL,KAFKA_SASL_SSL,REGISTRY,MOTO}_PORT   local stack ports (9092-9096, 8081, 5000)
`;

/**
 * How long a stop request waits for what is in flight. A send to Kafka waits without end while its broker or topic is
 * away, and so would the process. Leaving loses nothing: a snapshot without its completion marker deletes nothing and
 * is read again by the next one, a listener poll whose transaction is not committed is read again, and the sink
 * commits no offset before its rows are written.
 */
const SHUTDOWN_GRACE_MS = 20_000;

/** An address as the host of a URL: an IPv6 one in brackets. */
const hostInUrl = (host: string) => (host.includes(':') ? `[${host}]` : host);

/** The shell's code for a process ended by `signal`. */
const exitCodeOf = (signal: unknown) => (signal === 'SIGINT' ? 130 : 143);

/** Runs services until SIGINT/SIGTERM, then shuts them down in order. */
async function runServices(options: PipelineParts & { once: boolean }): Promise<void> {
  const config: Config = loadConfig();
  // Loaded on use, as each command's clients are: --help, --version and stack start ~0.2 s sooner (0.41 s against 0.61).
  const [{ openPipeline }, { createMetrics, serveMetrics }, { createHealth }] = await Promise.all([
    import('./pipeline.js'), import('../services/shared/metrics.js'), import('../services/shared/health.js'),
  ]);
  const logger = createLogger(config.logLevel);
  const metrics = createMetrics();
  const health = createHealth();
  // Its port is taken before anything is written: one in use stops the command there.
  const server = config.metrics ? await serveMetrics(metrics, health, config.metrics) : undefined;
  if (server) logger.info({ url: `http://${hostInUrl(config.metrics!.host)}:${config.metrics!.port}` }, 'serving /metrics and /healthz');
  const pipeline = await openPipeline({ config, logger, metrics, ...options, interactive: process.stderr.isTTY === true });
  // Once every dependency answered: a start that cannot be made says only why, in one line.
  logger.info({ version: VERSION, ...describeConfig(config, options) }, 'apigw-stream running');
  if (pipeline.snapshotter && !options.once) health.watch('snapshotter', () => pipeline.snapshotter!.health());
  if (pipeline.listener) health.watch('listener', () => pipeline.listener!.health());
  if (pipeline.sink) health.watch('sink', () => pipeline.sink!.health());
  health.set('running');
  const stop = new AbortController();
  const shutdown = (signal: string) => {
    if (stop.signal.aborted) return;
    logger.info({ signal }, 'shutting down');
    health.set('stopping');
    stop.abort(signal);
    setTimeout(() => {
      logger.warn({ graceSeconds: SHUTDOWN_GRACE_MS / 1000 }, 'still shutting down, most likely a send waiting for Kafka: leaving without it (what it did not finish is not marked done, so it is done again after the next start)');
      process.exit(exitCodeOf(signal));
    }, SHUTDOWN_GRACE_MS).unref();
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  try {
    if (options.snapshot && options.once) {
      const result = await pipeline.snapshotter!.runOnce(stop.signal);
      const failed = result.regions.filter((region) => !region.completed);
      // Which account a region is of matters only when several are read.
      const severalAccounts = new Set(result.regions.map((r) => r.accountId)).size > 1;
      const where = (r: AwsScope) => (severalAccounts ? `${r.region} of ${r.accountId}` : r.region);
      if (failed.length > 0 && stop.signal.aborted) {
        process.stderr.write(`apigw-stream: snapshot interrupted by ${String(stop.signal.reason)} in ${failed.map(where).join(', ')}: no completion marker written there, so nothing is deleted\n`);
        process.exitCode = exitCodeOf(stop.signal.reason);
      } else if (failed.length > 0) {
        throw new ApigwError(`snapshot incomplete in ${failed.map((r) => `${where(r)} (${r.error})`).join(', ')}`);
      }
    } else {
      const loops: Promise<void>[] = [];
      if (options.snapshot) loops.push(pipeline.snapshotter!.runForever(config.snapshotIntervalSeconds, stop.signal));
      if (options.listen) loops.push(pipeline.listener!.run(stop.signal));
      loops.push(new Promise((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true })));
      // A sink that stopped consuming for good ends the command with its error, not a process that only looks alive.
      await Promise.race([Promise.all(loops), ...(pipeline.sink ? [pipeline.sink.failed] : [])]);
    }
  } finally {
    await pipeline.close();
    server?.close();
  }
  // Everything this process opened is closed. kafkajs can keep a connection of its own open past its clients'
  // disconnect: after a broker restart, the socket a consumer's heartbeat opened to its group coordinator stays
  // open (async-hooks dump of a sink still alive 28 s after SIGTERM: that socket and its request queue's timers;
  // presumably a coordinator broker its cluster no longer disconnects). Leave rather than wait on it forever.
  process.exit(process.exitCode ?? 0);
}

function fail(error: unknown, logger?: Logger): never {
  // Commander has said what was wrong with the command line already (or shown the help or version asked for).
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  if (error instanceof QueryInputError) {
    process.stderr.write(`apigw-stream: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`apigw-stream: configuration error: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof DependencyError) {
    process.stderr.write(`apigw-stream: ${error.message}\n`);
    process.exit(3);
  }
  logger?.error({ err: error }, 'failed');
  process.stderr.write(`apigw-stream: ${describeError(error)}\n`);
  process.exit(1);
}


const program = new Command('apigw-stream')
  .version(VERSION)
  .description('Change-data-capture for AWS API Gateway v2 integrations: AWS -> Avro change events on Kafka -> ClickHouse current state and history.')
  .addHelpText('after', ENVIRONMENT_HELP)
  .showHelpAfterError()
  .hook('preAction', () => {
    for (const { name, meant } of unreadVariables()) {
      process.stderr.write(`apigw-stream: warning: ${name} is not a setting of apigw-stream and is ignored${meant ? ` (did you mean ${meant}?)` : ''}\n`);
    }
  });

program.command('snapshot')
  .description('Read every API and integration of every configured region of each account and emit one change event per integration, then a completion marker per account and region')
  .option('--once', 'take one snapshot and exit (exit code 1 if a region could not be read completely)')
  .action((opts: { once?: boolean }) => runServices({ snapshot: true, listen: false, sink: false, once: opts.once === true }));

program.command('listen')
  .description('Poll CloudTrail LookupEvents in every configured region and emit each API Gateway v2 integration change with who made it; '
    + 'the checkpoint is committed in the same Kafka transaction as the events')
  .action(() => runServices({ snapshot: false, listen: true, sink: false, once: false }));

const SINK_HELP = `
What it does when something fails:
  A message it cannot decode goes to <APIGW_TOPIC>.dlq, with why in its headers, and the sink goes on. That topic, as
  apigw-stream makes it, keeps dead letters until someone deletes them: \`apigw-stream tail --dead-letters\` shows
  them, \`apigw-stream redrive\` sends back those that decode now.
  A ClickHouse write or read that fails is tried again with backoff (APIGW_SINK_WRITE_RETRIES times); then the sink
  starts over from its committed offsets, with backoff, and nothing is written twice.
  Events the topic's retention deleted before the sink wrote them are named in a warning, per partition.

What it holds:
  The state of each live integration of its partitions (~2 KB each), up to APIGW_SINK_HELD_INTEGRATIONS; past it, it
  lets go of the ones held longest and reads each back from ClickHouse when its next event comes.

Seen from outside:
  /metrics and /healthz on APIGW_METRICS_PORT; JSON log lines on stderr (LOG_LEVEL). SIGINT or SIGTERM: it stops
  fetching, writes and commits what it applied, and exits 0 (after 20 s it leaves without what it did not
  finish, which is done again after the next start).
`;

program.command('sink')
  .description('Consume the topic and materialize current state, APIs and history in ClickHouse; commits offsets only after ClickHouse has the rows')
  .addHelpText('after', SINK_HELP)
  .action(() => runServices({ snapshot: false, listen: false, sink: true, once: false }));

program.command('run')
  .description('Run the snapshotter (on its interval), the CloudTrail listener and the sink together in one process')
  .action(() => runServices({ snapshot: true, listen: true, sink: true, once: false }));

program.command('demo')
  .description('Start the local stack, seed the AWS emulator, and run the whole pipeline end to end on the embedded defaults')
  // Loaded on use: the demo seeds the AWS emulator with the SDK, which the other commands do without.
  .action(async () => (await import('./demo.js')).runDemo(createLogger(process.env.LOG_LEVEL ?? 'warn')));

program.addCommand(queryCommand());
program.addCommand(tailCommand());
program.addCommand(accountsCommand());
program.addCommand(redriveCommand());

const stack = program.command('stack').description('The local real stack: Kafka (KRaft), Apicurio Registry, moto; installed once under .stack/');
stack.command('up').description('install (once) and start every part that is not answering yet, and wait until each answers')
  .action(async () => { await stackUp((line) => process.stdout.write(`${line}\n`)); });
stack.command('down').description('stop the parts this checkout started')
  .addOption(new Option('--only <parts...>', 'stop only these parts').choices(['kafka', 'schema-registry', 'moto']))
  .action(async (opts: { only?: string[] }) => { await stackDown((line) => process.stdout.write(`${line}\n`), opts.only); });
stack.command('status').description('show each part, its port and whether it answers (exit code 1 if one does not)')
  .action(async () => {
    const parts = await stackStatus();
    printTable(parts.map((p) => ({ ...p, answers: p.answers ? 'yes' : 'no', started_here: p.pid ? `yes (pid ${p.pid})` : 'no' })), ['name', 'port', 'endpoint', 'answers', 'started_here'], 60);
    if (parts.some((p) => !p.answers)) process.exitCode = 1;
  });

// A reader that stops early (`tail --json | head -1`) closes the pipe: that ends the command, quietly.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(0);
});

// A usage error (an unknown option, a missing argument, a value not among the choices) is bad input, exit 2 as a bad
// value is, not commander's 1. Set on each command: commands made apart and added do not inherit it.
const everyCommand = (command: Command): Command[] => [command, ...command.commands.flatMap(everyCommand)];
for (const command of everyCommand(program)) command.exitOverride();

program.parseAsync(process.argv).catch((error) => fail(error));
