import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import didYouMean from 'didyoumean2';
import { z } from 'zod';
import type { BasicAuth } from './basic-auth.js';
import { ConfigError } from './errors.js';
import { mskIamSasl, type MskIamSasl } from './msk-iam.js';

/** How clients reach the brokers: SASL credentials and TLS, passed to kafkajs as they are. */
export interface KafkaSecurity {
  sasl?: SaslCredentials;
  /** true: TLS with the system's CAs; `ca`: with these PEM certificates only. */
  ssl?: true | { ca: string };
}

const PASSWORD_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
type PasswordMechanism = (typeof PASSWORD_MECHANISMS)[number];
const SASL_MECHANISMS = [...PASSWORD_MECHANISMS, 'aws-msk-iam'] as const;
// One member per mechanism, as kafkajs types its options.
type PasswordCredentials = { [M in PasswordMechanism]: { mechanism: M; username: string; password: string } }[PasswordMechanism];
type SaslCredentials = PasswordCredentials | MskIamSasl;

export type ClickHouseTarget =
  | { kind: 'chdb'; path: string }
  | { kind: 'http'; url: string; username?: string; password?: string; /** PEM CAs that sign an https server's certificate. */ ca?: string };

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;
const AWS_REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/;
// arn:<partition>:iam::<account>:role/<optional path/>name; the account is the 5th field.
const ROLE_ARN = /^arn:aws[a-z-]*:iam::(\d{12}):role\/[\w+=,.@/-]{1,512}$/;
// A role's name, with its path if it has one: what follows `role/` in its ARN.
const ROLE_NAME = /^[\w+=,.@-]+(\/[\w+=,.@-]+)*$/;

const STACK_PORTS = {
  kafka: ['APIGW_STACK_KAFKA_PORT', 9092],
  kafkaController: ['APIGW_STACK_KAFKA_CONTROLLER_PORT', 9093],
  kafkaSasl: ['APIGW_STACK_KAFKA_SASL_PORT', 9094],
  kafkaSsl: ['APIGW_STACK_KAFKA_SSL_PORT', 9095],
  kafkaSaslSsl: ['APIGW_STACK_KAFKA_SASL_SSL_PORT', 9096],
  registry: ['APIGW_STACK_REGISTRY_PORT', 8081],
  moto: ['APIGW_STACK_MOTO_PORT', 5000],
} as const;

/** Defaults of the local real stack (`apigw-stream stack up`); each port can be moved with its variable. */
export function stackPorts(env: NodeJS.ProcessEnv = process.env): Record<keyof typeof STACK_PORTS, number> {
  const ports = Object.entries(STACK_PORTS).map(([part, [variable, fallback]]) => [part, parsePort(variable, env[variable], fallback)]);
  return Object.fromEntries(ports) as Record<keyof typeof STACK_PORTS, number>;
}

function parsePort(variable: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new ConfigError(variable, `expected a TCP port (1-65535), got "${raw}"`);
  return value;
}

const csv = (raw: string) => raw.split(',').map((part) => part.trim()).filter(Boolean);

/** A number from `min` to `max`; `what` says what it counts, in the message that names the range when it is not one. */
function bounded(what: string, min: number, max?: number, { integer = false } = {}) {
  const expected = `expected ${what}${max === undefined ? `, at least ${min}` : ` from ${min} to ${max}`}`;
  const number = z.coerce.number({ error: expected });
  const checked = (integer ? number.int(expected) : number).min(min, expected);
  return max === undefined ? checked : checked.max(max, expected);
}

/**
 * The sink's default limit on integrations held in memory: half the JavaScript heap's limit (which node sizes from the
 * machine's or the container's memory, or --max-old-space-size), at 4 KiB each. A held integration takes ~2.1 KB of
 * heap with the benchmark's after-images (bench/README.md, sink state); larger request templates take more. Without
 * a limit, an inventory larger than the heap would stop the sink with an out-of-memory error at every start.
 */
function defaultHeldIntegrations(): number {
  return Math.floor(getHeapStatistics().heap_size_limit / 2 / 4096);
}

/** Every setting with its variable, unit and default. Parsed once at start; a bad value stops the program. */
const schema = z.object({
  /** Kafka bootstrap brokers, comma-separated host:port. @default 127.0.0.1:<stack kafka port> */
  KAFKA_BROKERS: z.string().transform(csv).pipe(
    z.array(z.string().regex(HOST_PORT, 'expected comma-separated host:port (e.g. 127.0.0.1:9092)')).min(1, 'expected at least one host:port'),
  ),
  /**
   * SASL mechanism for the brokers: plain, scram-sha-256 or scram-sha-512 (with a user name and password), or
   * aws-msk-iam (Amazon MSK's IAM access control, with the AWS credentials). @default none
   */
  KAFKA_SASL_MECHANISM: z.string().toLowerCase().pipe(z.enum(SASL_MECHANISMS, 'expected plain, scram-sha-256, scram-sha-512 or aws-msk-iam')).optional(),
  /** SASL user name; with KAFKA_SASL_MECHANISM plain or scram-*. */
  KAFKA_SASL_USERNAME: z.string().optional(),
  /** SASL password; with KAFKA_SASL_MECHANISM plain or scram-*. */
  KAFKA_SASL_PASSWORD: z.string().optional(),
  /** The MSK cluster's region, which KAFKA_SASL_MECHANISM=aws-msk-iam signs its tokens for. @default AWS_REGION */
  KAFKA_AWS_REGION: z.string().regex(AWS_REGION, 'expected an AWS region name such as us-east-1').optional(),
  /** TLS to the brokers. @default false */
  KAFKA_SSL: z.enum(['true', 'false'], 'expected true or false').transform((value) => value === 'true'),
  /** PEM file of the CAs that sign the brokers' certificates (turns TLS on). @default the system's CAs */
  KAFKA_SSL_CA_FILE: z.string().optional(),
  /** Confluent-compatible schema registry base URL, with user:password@ for basic auth. @default the local stack's Apicurio ccompat API */
  SCHEMA_REGISTRY_URL: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL of a Confluent-compatible registry' }),
  /** ClickHouse: an http(s) server URL, or chdb://PATH for the embedded engine. @default chdb://./data/clickhouse */
  CLICKHOUSE_URL: z.string(),
  /** PEM file of the CAs that sign an https:// CLICKHOUSE_URL's certificate. @default the system's CAs */
  CLICKHOUSE_CA_FILE: z.string().optional(),
  /** ClickHouse database of the tables. @default apigw */
  CLICKHOUSE_DATABASE: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an identifier (letters, digits, _)'),
  /** Cluster name: DDL runs ON CLUSTER with Replicated engines. @default none */
  CLICKHOUSE_CLUSTER: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a cluster name').optional(),
  /** Regions to watch, comma-separated. @default AWS_REGION */
  AWS_REGIONS: z.string().transform(csv).pipe(z.array(z.string().regex(AWS_REGION, 'expected AWS region names such as us-east-1'))),
  /** AWS endpoint override (the SDK's own variable). @default none: real AWS */
  AWS_ENDPOINT_URL: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).optional(),
  /** Account id to report; read from STS GetCallerIdentity when unset. */
  AWS_ACCOUNT_ID: z.string().regex(/^\d{12}$/, 'expected a 12-digit AWS account id').optional(),
  /** IAM roles to assume, one per account to read, comma-separated ARNs. @default none: the credentials' own account */
  AWS_ROLE_ARNS: z.string().transform(csv).pipe(
    z.array(z.string().regex(ROLE_ARN, 'expected comma-separated IAM role ARNs (arn:aws:iam::111111111111:role/NAME)')).min(1, 'expected at least one role ARN'),
  ).optional(),
  /** Role name (with its path) to assume in every active account of the organization. @default none */
  AWS_ORGANIZATION_ROLE: z.string().regex(ROLE_NAME, 'expected the name of an IAM role (with its path, if any), such as apigw-reader').optional(),
  /** External id given with every role assumed (AWS_ROLE_ARNS, AWS_ORGANIZATION_ROLE), when their trust policies ask for one. @default none */
  AWS_ROLE_EXTERNAL_ID: z.string().regex(/^[\w+=,.@:/-]{2,1224}$/, 'expected an external id: 2 to 1224 of letters, digits and + = , . @ : / - _').optional(),
  /** Organizational units (or the root) whose accounts, in them and in the units nested below, are read; comma-separated ids. @default none: the whole organization */
  AWS_ORGANIZATION_UNITS: z.string().transform(csv).pipe(
    z.array(z.string().regex(/^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$/, 'expected comma-separated organizational unit ids (ou-ab12-cd34ef56) or the root\'s (r-ab12)')).min(1, 'expected at least one unit id'),
  ).optional(),
  /** Accounts of the organization not to read, comma-separated ids. @default none */
  AWS_ORGANIZATION_EXCLUDE_ACCOUNTS: z.string().transform(csv).pipe(z.array(z.string().regex(/^\d{12}$/, 'expected comma-separated 12-digit AWS account ids'))).optional(),
  /** Seconds between two listings of the organization's accounts. @default 900 */
  AWS_ORGANIZATION_REFRESH_SECONDS: bounded('a whole number of seconds', 1, undefined, { integer: true }),
  /** Topic of the change events. @default aws.apigatewayv2.integrations */
  APIGW_TOPIC: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, 'expected a Kafka topic name: 1 to 200 of A-Z a-z 0-9 . _ -'),
  /** Partitions when apigw-stream creates the topic. @default 6 */
  APIGW_TOPIC_PARTITIONS: bounded('a whole number of partitions', 1, 1000, { integer: true }),
  /** Seconds between two snapshots when `snapshot` runs without --once. @default 300 */
  APIGW_SNAPSHOT_INTERVAL_SECONDS: bounded('a whole number of seconds', 1, undefined, { integer: true }),
  /** Concurrent GetIntegrations calls per account and region. @default 8 */
  APIGW_SNAPSHOT_CONCURRENCY: bounded('a whole number of concurrent calls', 1, 64, { integer: true }),
  /** Regions (of any account) a snapshot reads at once. @default 4 */
  APIGW_SNAPSHOT_REGIONS_AT_ONCE: bounded('a whole number of regions', 1, 256, { integer: true }),
  /** CloudTrail endpoint override (the SDK's service-specific variable). @default AWS_ENDPOINT_URL */
  AWS_ENDPOINT_URL_CLOUDTRAIL: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).optional(),
  /** Seconds between two LookupEvents polls of a region. @default 30 */
  APIGW_LISTENER_POLL_SECONDS: bounded('a number of seconds', 0.1),
  /** Hours to look back when the listener starts with no checkpoint (CloudTrail keeps 90 days). @default 24 */
  APIGW_LISTENER_LOOKBACK_HOURS: bounded('a number of hours', 0, 2160),
  /** Seconds each poll re-reads before the previous window's end, for events CloudTrail makes visible late. @default 900 */
  APIGW_LISTENER_OVERLAP_SECONDS: bounded('a whole number of seconds', 0, 86_400, { integer: true }),
  /** Seconds between two full reads of the overlap; polls in between read only what is new. @default 300 */
  APIGW_LISTENER_SWEEP_SECONDS: bounded('a number of seconds', 0),
  /** LookupEvents calls per second per account and region (its limit is about 2). @default 2 */
  APIGW_LISTENER_CALLS_PER_SECOND: bounded('a number of calls per second', 0.1, 10),
  /** Fault injection for tests: milliseconds between producing a poll's events and committing them. @default 0 */
  APIGW_LISTENER_COMMIT_DELAY_MS: bounded('a whole number of milliseconds', 0, undefined, { integer: true }),
  /** Consumer group of the sink. @default apigw-stream-sink */
  APIGW_SINK_GROUP_ID: z.string().min(1),
  /**
   * Retries of a failing ClickHouse write (with backoff up to 15 s apart) before the sink drops what it holds in
   * memory and consumes again from its committed offsets. @default 12
   */
  APIGW_SINK_WRITE_RETRIES: bounded('a whole number of retries', 0, 100, { integer: true }),
  /**
   * The most integrations whose state the sink holds in memory; beyond it, it lets go of the ones held longest and
   * reads them back from ClickHouse when their events come. @default half the JavaScript heap's limit at 4 KiB each
   */
  APIGW_SINK_HELD_INTEGRATIONS: bounded('a whole number of integrations', 1, undefined, { integer: true }).optional(),
  /** Port of the local query API that `sink` and `run` serve over the embedded engine. @default a free port */
  APIGW_QUERY_PORT: bounded('a TCP port', 0, 65535, { integer: true }).optional(),
  /** Port of the Prometheus /metrics endpoint (and /healthz); 0 or unset turns it off. */
  APIGW_METRICS_PORT: bounded('a TCP port', 0, 65535, { integer: true }).optional(),
  /** Address /metrics and /healthz are served on: 0.0.0.0 (every interface) for a scraper or a probe from outside. @default 127.0.0.1 */
  APIGW_METRICS_HOST: z.union([z.ipv4(), z.ipv6()], { error: 'expected an IP address to listen on, such as 0.0.0.0 (every interface) or 127.0.0.1' }),
  /** pino log level. @default info */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
});

/** Every environment variable the configuration reads (besides AWS_REGION and AWS_DEFAULT_REGION, AWS_REGIONS's fallbacks). */
export const CONFIG_VARIABLES = Object.keys(schema.shape);

export interface Config {
  kafkaBrokers: string[];
  kafkaSecurity: KafkaSecurity;
  /** Without credentials: it appears in messages. */
  schemaRegistryUrl: string;
  schemaRegistryAuth?: BasicAuth;
  clickhouse: ClickHouseTarget;
  clickhouseDatabase: string;
  clickhouseCluster?: string;
  regions: string[];
  awsEndpointUrl?: string;
  awsAccountId?: string;
  /** Roles to read accounts through, each with the account it belongs to; empty: the credentials' own account. */
  awsRoles: AwsRole[];
  /** Given with every role assumed, for trust policies that ask for it. */
  awsRoleExternalId?: string;
  /**
   * Read every active account of the organization (or of these units, nested ones included) but the excluded ones
   * through this role, its accounts listed again this often.
   */
  awsOrganization?: { roleName: string; refreshSeconds: number; units: string[]; excludedAccounts: string[] };
  topic: string;
  topicPartitions: number;
  snapshotIntervalSeconds: number;
  snapshotConcurrency: number;
  snapshotRegionsAtOnce: number;
  sinkGroupId: string;
  sinkWriteRetries: number;
  /** The most integrations the sink holds in memory. */
  sinkHeldIntegrations: number;
  cloudtrailEndpointUrl?: string;
  listener: { pollSeconds: number; lookbackHours: number; overlapSeconds: number; sweepSeconds: number; callsPerSecond: number; commitDelayMs: number };
  /** Where /metrics and /healthz are served; none: not served. */
  metrics?: { host: string; port: number };
  queryPort?: number;
  logLevel: string;
}

export interface AwsRole {
  arn: string;
  accountId: string;
}

export function parseClickHouseUrl(raw: string): ClickHouseTarget {
  if (raw.startsWith('chdb://')) {
    const path = raw.slice('chdb://'.length);
    if (!path) throw new ConfigError('CLICKHOUSE_URL', 'chdb:// needs a data directory, e.g. chdb://./data/clickhouse');
    return { kind: 'chdb', path };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('CLICKHOUSE_URL', `expected an http(s) URL or chdb://PATH, got "${withoutPassword(raw)}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('CLICKHOUSE_URL', `expected an http(s) URL or chdb://PATH, got scheme "${url.protocol}"`);
  }
  if (!url.hostname) throw new ConfigError('CLICKHOUSE_URL', `expected a host in "${withoutPassword(raw)}"`);
  return { kind: 'http', ...splitUserInfo(url) };
}

/** CLICKHOUSE_URL's target, with the CAs of CLICKHOUSE_CA_FILE for an https server. */
function clickHouseTarget(raw: string, caFile: string | undefined): ClickHouseTarget {
  const target = parseClickHouseUrl(raw);
  if (caFile === undefined) return target;
  if (target.kind !== 'http' || !target.url.startsWith('https:')) {
    throw new ConfigError('CLICKHOUSE_CA_FILE', `is for an https:// CLICKHOUSE_URL, and CLICKHOUSE_URL is ${target.kind === 'http' ? target.url : `chdb://${target.path}`}`);
  }
  return { ...target, ca: readCaFile('CLICKHOUSE_CA_FILE', caFile) };
}

/** The PEM certificates in `file`, which `variable` names. */
function readCaFile(variable: string, file: string): string {
  let ca: string;
  try {
    ca = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(variable, `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(variable, `${file} holds no PEM certificate`);
  return ca;
}

/** A URL without its user info (and trailing slash), and the user name and password that user info carried. */
function splitUserInfo(url: URL): { url: string; username?: string; password?: string } {
  const username = decodeURIComponent(url.username) || undefined;
  const password = decodeURIComponent(url.password) || undefined;
  url.username = '';
  url.password = '';
  return { url: url.toString().replace(/\/$/, ''), username, password };
}

// What Kubernetes gives a pod for each service beside it: a service named apigw-<x> gives APIGW_<X>_SERVICE_HOST,
// APIGW_<X>_PORT=tcp://…, APIGW_<X>_PORT_9464_TCP_ADDR and so on.
const isServiceLink = (name: string, value = '') => /_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$/.test(name)
  || (name.endsWith('_PORT') && /^(tcp|udp|sctp):\/\//.test(value));

/**
 * Variables under apigw-stream's prefix that it does not read, each with the one it likely stands for: misspelled, a
 * setting keeps its default without a word. Named, not refused: "APIGW" is a common short name for API Gateway, and a
 * shell may hold such variables for other tools.
 */
export function unreadVariables(env: NodeJS.ProcessEnv = process.env): { name: string; meant?: string }[] {
  const prefix = 'APIGW_';
  const read = [...CONFIG_VARIABLES, ...Object.values(STACK_PORTS).map(([variable]) => variable), 'APIGW_STACK_DIR']
    .filter((name) => name.startsWith(prefix));
  // Compared without the prefix they all share, which would make any two of them look alike.
  const suffixes = read.map((name) => name.slice(prefix.length));
  return Object.keys(env)
    .filter((name) => name.startsWith(prefix) && !read.includes(name) && !isServiceLink(name, env[name]))
    .sort()
    .map((name) => {
      const meant = didYouMean(name.slice(prefix.length), suffixes);
      return meant === null ? { name } : { name, meant: `${prefix}${meant}` };
    });
}

/** Parses and checks the environment; throws a ConfigError naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const ports = stackPorts(env);
  const pick = (name: string, fallback?: string) => {
    const value = env[name];
    return value === undefined || value === '' ? fallback : value;
  };
  const raw = {
    KAFKA_BROKERS: pick('KAFKA_BROKERS', `127.0.0.1:${ports.kafka}`),
    KAFKA_SASL_MECHANISM: pick('KAFKA_SASL_MECHANISM'),
    KAFKA_SASL_USERNAME: pick('KAFKA_SASL_USERNAME'),
    KAFKA_SASL_PASSWORD: pick('KAFKA_SASL_PASSWORD'),
    KAFKA_AWS_REGION: pick('KAFKA_AWS_REGION'),
    KAFKA_SSL: pick('KAFKA_SSL', 'false'),
    KAFKA_SSL_CA_FILE: pick('KAFKA_SSL_CA_FILE'),
    SCHEMA_REGISTRY_URL: pick('SCHEMA_REGISTRY_URL', `http://127.0.0.1:${ports.registry}/apis/ccompat/v7`),
    CLICKHOUSE_URL: pick('CLICKHOUSE_URL', 'chdb://./data/clickhouse'),
    CLICKHOUSE_CA_FILE: pick('CLICKHOUSE_CA_FILE'),
    CLICKHOUSE_DATABASE: pick('CLICKHOUSE_DATABASE', 'apigw'),
    CLICKHOUSE_CLUSTER: pick('CLICKHOUSE_CLUSTER'),
    AWS_REGIONS: pick('AWS_REGIONS', pick('AWS_REGION', pick('AWS_DEFAULT_REGION', ''))),
    AWS_ENDPOINT_URL: pick('AWS_ENDPOINT_URL'),
    AWS_ACCOUNT_ID: pick('AWS_ACCOUNT_ID'),
    AWS_ROLE_ARNS: pick('AWS_ROLE_ARNS'),
    AWS_ORGANIZATION_ROLE: pick('AWS_ORGANIZATION_ROLE'),
    AWS_ROLE_EXTERNAL_ID: pick('AWS_ROLE_EXTERNAL_ID'),
    AWS_ORGANIZATION_REFRESH_SECONDS: pick('AWS_ORGANIZATION_REFRESH_SECONDS', '900'),
    AWS_ORGANIZATION_EXCLUDE_ACCOUNTS: pick('AWS_ORGANIZATION_EXCLUDE_ACCOUNTS'),
    AWS_ORGANIZATION_UNITS: pick('AWS_ORGANIZATION_UNITS'),
    APIGW_TOPIC: pick('APIGW_TOPIC', 'aws.apigatewayv2.integrations'),
    APIGW_TOPIC_PARTITIONS: pick('APIGW_TOPIC_PARTITIONS', '6'),
    APIGW_SNAPSHOT_INTERVAL_SECONDS: pick('APIGW_SNAPSHOT_INTERVAL_SECONDS', '300'),
    APIGW_SNAPSHOT_CONCURRENCY: pick('APIGW_SNAPSHOT_CONCURRENCY', '8'),
    APIGW_SNAPSHOT_REGIONS_AT_ONCE: pick('APIGW_SNAPSHOT_REGIONS_AT_ONCE', '4'),
    APIGW_SINK_GROUP_ID: pick('APIGW_SINK_GROUP_ID', 'apigw-stream-sink'),
    APIGW_SINK_WRITE_RETRIES: pick('APIGW_SINK_WRITE_RETRIES', '12'),
    APIGW_SINK_HELD_INTEGRATIONS: pick('APIGW_SINK_HELD_INTEGRATIONS'),
    AWS_ENDPOINT_URL_CLOUDTRAIL: pick('AWS_ENDPOINT_URL_CLOUDTRAIL'),
    APIGW_LISTENER_POLL_SECONDS: pick('APIGW_LISTENER_POLL_SECONDS', '30'),
    APIGW_LISTENER_LOOKBACK_HOURS: pick('APIGW_LISTENER_LOOKBACK_HOURS', '24'),
    APIGW_LISTENER_OVERLAP_SECONDS: pick('APIGW_LISTENER_OVERLAP_SECONDS', '900'),
    APIGW_LISTENER_SWEEP_SECONDS: pick('APIGW_LISTENER_SWEEP_SECONDS', '300'),
    APIGW_LISTENER_CALLS_PER_SECOND: pick('APIGW_LISTENER_CALLS_PER_SECOND', '2'),
    APIGW_LISTENER_COMMIT_DELAY_MS: pick('APIGW_LISTENER_COMMIT_DELAY_MS', '0'),
    APIGW_METRICS_PORT: pick('APIGW_METRICS_PORT'),
    APIGW_METRICS_HOST: pick('APIGW_METRICS_HOST', '127.0.0.1'),
    APIGW_QUERY_PORT: pick('APIGW_QUERY_PORT'),
    LOG_LEVEL: pick('LOG_LEVEL', 'info'),
  };
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0]);
    const shown = variable === 'KAFKA_SASL_PASSWORD' ? '(hidden)' : withoutPassword(raw[variable as keyof typeof raw]);
    throw new ConfigError(variable, `${issue.message}, got "${shown ?? ''}"`);
  }
  const v = parsed.data;
  checkOneAccountSource(v);
  return {
    kafkaBrokers: v.KAFKA_BROKERS,
    kafkaSecurity: kafkaSecurity(v, pick('AWS_REGION', pick('AWS_DEFAULT_REGION'))),
    ...registryTarget(v.SCHEMA_REGISTRY_URL),
    clickhouse: clickHouseTarget(v.CLICKHOUSE_URL, v.CLICKHOUSE_CA_FILE),
    clickhouseDatabase: v.CLICKHOUSE_DATABASE,
    clickhouseCluster: v.CLICKHOUSE_CLUSTER,
    regions: v.AWS_REGIONS,
    awsEndpointUrl: v.AWS_ENDPOINT_URL,
    awsAccountId: v.AWS_ACCOUNT_ID,
    awsRoles: awsRoles(v),
    awsRoleExternalId: v.AWS_ROLE_EXTERNAL_ID,
    awsOrganization: v.AWS_ORGANIZATION_ROLE
      ? {
        roleName: v.AWS_ORGANIZATION_ROLE, refreshSeconds: v.AWS_ORGANIZATION_REFRESH_SECONDS,
        units: v.AWS_ORGANIZATION_UNITS ?? [], excludedAccounts: v.AWS_ORGANIZATION_EXCLUDE_ACCOUNTS ?? [],
      }
      : undefined,
    topic: v.APIGW_TOPIC,
    topicPartitions: v.APIGW_TOPIC_PARTITIONS,
    snapshotIntervalSeconds: v.APIGW_SNAPSHOT_INTERVAL_SECONDS,
    snapshotConcurrency: v.APIGW_SNAPSHOT_CONCURRENCY,
    snapshotRegionsAtOnce: v.APIGW_SNAPSHOT_REGIONS_AT_ONCE,
    sinkGroupId: v.APIGW_SINK_GROUP_ID,
    sinkWriteRetries: v.APIGW_SINK_WRITE_RETRIES,
    sinkHeldIntegrations: v.APIGW_SINK_HELD_INTEGRATIONS ?? defaultHeldIntegrations(),
    cloudtrailEndpointUrl: v.AWS_ENDPOINT_URL_CLOUDTRAIL ?? v.AWS_ENDPOINT_URL,
    listener: {
      pollSeconds: v.APIGW_LISTENER_POLL_SECONDS,
      lookbackHours: v.APIGW_LISTENER_LOOKBACK_HOURS,
      overlapSeconds: v.APIGW_LISTENER_OVERLAP_SECONDS,
      sweepSeconds: v.APIGW_LISTENER_SWEEP_SECONDS,
      callsPerSecond: v.APIGW_LISTENER_CALLS_PER_SECOND,
      commitDelayMs: v.APIGW_LISTENER_COMMIT_DELAY_MS,
    },
    metrics: v.APIGW_METRICS_PORT ? { host: v.APIGW_METRICS_HOST, port: v.APIGW_METRICS_PORT } : undefined,
    queryPort: v.APIGW_QUERY_PORT,
    logLevel: v.LOG_LEVEL,
  };
}

/** A URL's password, replaced for showing it. */
function withoutPassword(value: string | undefined): string | undefined {
  return value?.replace(/^(\w+:\/\/[^:/@]*):[^@/]*@/, '$1:***@');
}

/** The registry's URL without its user info, and the basic credentials that user info carried. */
function registryTarget(raw: string): Pick<Config, 'schemaRegistryUrl' | 'schemaRegistryAuth'> {
  const { url, username, password = '' } = splitUserInfo(new URL(raw));
  return { schemaRegistryUrl: url, schemaRegistryAuth: username ? { username, password } : undefined };
}

/**
 * SASL needs all three of its variables (MSK IAM a region instead of a user), and a CA file must be readable; both
 * are checked before anything connects.
 */
function kafkaSecurity(v: z.infer<typeof schema>, awsRegion: string | undefined): KafkaSecurity {
  const security: KafkaSecurity = {};
  const { KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = v;
  if (mechanism === 'aws-msk-iam') {
    if (username !== undefined || password !== undefined) {
      const variable = username !== undefined ? 'KAFKA_SASL_USERNAME' : 'KAFKA_SASL_PASSWORD';
      throw new ConfigError(variable, 'set, but KAFKA_SASL_MECHANISM=aws-msk-iam signs with the AWS credentials, not a user name and password: unset it');
    }
    const region = v.KAFKA_AWS_REGION ?? awsRegion;
    if (!region) throw new ConfigError('KAFKA_AWS_REGION', 'KAFKA_SASL_MECHANISM=aws-msk-iam needs the cluster\'s region: set KAFKA_AWS_REGION (or AWS_REGION)');
    security.sasl = mskIamSasl(region);
  } else if (mechanism) {
    if (!username) throw new ConfigError('KAFKA_SASL_USERNAME', `KAFKA_SASL_MECHANISM=${mechanism} needs a user name`);
    if (password === undefined) throw new ConfigError('KAFKA_SASL_PASSWORD', `KAFKA_SASL_MECHANISM=${mechanism} needs a password`);
    security.sasl = { mechanism, username, password };
  } else if (username !== undefined || password !== undefined) {
    const variable = username !== undefined ? 'KAFKA_SASL_USERNAME' : 'KAFKA_SASL_PASSWORD';
    throw new ConfigError('KAFKA_SASL_MECHANISM', `${variable} is set, but no mechanism: set KAFKA_SASL_MECHANISM to plain, scram-sha-256 or scram-sha-512`);
  }
  if (v.KAFKA_AWS_REGION && mechanism !== 'aws-msk-iam') {
    throw new ConfigError('KAFKA_SASL_MECHANISM', `KAFKA_AWS_REGION is set, but ${mechanism ? `${mechanism} does not sign for a region` : 'no mechanism signs for it'}: set KAFKA_SASL_MECHANISM to aws-msk-iam`);
  }
  if (v.KAFKA_SSL_CA_FILE) {
    security.ssl = { ca: readCaFile('KAFKA_SSL_CA_FILE', v.KAFKA_SSL_CA_FILE) };
  } else if (v.KAFKA_SSL) {
    security.ssl = true;
  }
  return security;
}

/** The KAFKA_SASL_MECHANISM value that gave these credentials (aws-msk-iam's kafkajs mechanism is oauthbearer). */
export function saslMechanismName(sasl: SaslCredentials): string {
  return 'region' in sasl ? 'aws-msk-iam' : sasl.mechanism;
}

/** How a start line shows the SASL in use: its mechanism and whose it is, never a secret. */
function saslShown(sasl: SaslCredentials | undefined): Record<string, string> {
  if (!sasl) return {};
  return { sasl: saslMechanismName(sasl), ...('region' in sasl ? { region: sasl.region } : { user: sasl.username }) };
}

/**
 * The accounts to read come from one place: the credentials' own (AWS_ACCOUNT_ID names it), AWS_ROLE_ARNS, or
 * AWS_ORGANIZATION_ROLE; an external id only with roles, units and excluded accounts only with an organization.
 */
function checkOneAccountSource(v: z.infer<typeof schema>): void {
  const sources = [['AWS_ACCOUNT_ID', v.AWS_ACCOUNT_ID], ['AWS_ROLE_ARNS', v.AWS_ROLE_ARNS], ['AWS_ORGANIZATION_ROLE', v.AWS_ORGANIZATION_ROLE]].filter(([, value]) => value);
  if (sources.length > 1) {
    const [[first], [second]] = sources as [[string], [string]];
    throw new ConfigError(second, `${first} is set too, and both say which accounts to read (${first}: only the credentials' own, AWS_ROLE_ARNS: the roles' accounts, AWS_ORGANIZATION_ROLE: the organization's): set one of them`);
  }
  for (const [variable, value] of [['AWS_ORGANIZATION_UNITS', v.AWS_ORGANIZATION_UNITS], ['AWS_ORGANIZATION_EXCLUDE_ACCOUNTS', v.AWS_ORGANIZATION_EXCLUDE_ACCOUNTS]] as const) {
    if (value && !v.AWS_ORGANIZATION_ROLE) throw new ConfigError(variable, 'set, but no organization is read: it goes with AWS_ORGANIZATION_ROLE');
  }
  if (v.AWS_ROLE_EXTERNAL_ID && !v.AWS_ROLE_ARNS && !v.AWS_ORGANIZATION_ROLE) {
    throw new ConfigError('AWS_ROLE_EXTERNAL_ID', 'set, but no role is assumed: it goes with AWS_ROLE_ARNS or AWS_ORGANIZATION_ROLE');
  }
}

/** One role per account: two roles of one account would read it twice. */
function awsRoles(v: z.infer<typeof schema>): AwsRole[] {
  const roles = (v.AWS_ROLE_ARNS ?? []).map((arn) => ({ arn, accountId: ROLE_ARN.exec(arn)![1]! }));
  const seen = new Map<string, string>();
  for (const { arn, accountId } of roles) {
    const other = seen.get(accountId);
    if (other) throw new ConfigError('AWS_ROLE_ARNS', `${other} and ${arn} are both of account ${accountId}: give one role per account`);
    seen.set(accountId, arn);
  }
  return roles;
}

/** The AWS side needs at least one region; checked only by the commands that read AWS. */
export function requireRegions(config: Config): string[] {
  if (config.regions.length === 0) throw new ConfigError('AWS_REGIONS', 'no region configured: set AWS_REGIONS (or AWS_REGION)');
  return config.regions;
}

/**
 * What a service start uses, for its first log line: where it reads and writes, and what it reads, for the parts it
 * runs. No secret: credentials appear as the user names they carry.
 */
export function describeConfig(config: Config, parts: { snapshot: boolean; listen: boolean; sink: boolean; once?: boolean }): Record<string, unknown> {
  const { sasl, ssl } = config.kafkaSecurity;
  const target = config.clickhouse;
  const readsAws = parts.snapshot || parts.listen;
  const accounts = config.awsOrganization
    ? { organizationRole: config.awsOrganization.roleName, units: config.awsOrganization.units, excluded: config.awsOrganization.excludedAccounts }
    : config.awsRoles.length > 0 ? config.awsRoles.map((role) => role.accountId) : 'the credentials\' own';
  return {
    kafka: { brokers: config.kafkaBrokers, ...saslShown(sasl), tls: ssl !== undefined },
    registry: config.schemaRegistryUrl,
    topic: config.topic,
    ...(parts.sink ? {
      clickhouse: target.kind === 'chdb' ? `chdb://${target.path}` : target.url,
      ...(target.kind === 'http' && target.username ? { clickhouseUser: target.username } : {}),
      database: config.clickhouseDatabase,
      ...(config.clickhouseCluster ? { cluster: config.clickhouseCluster } : {}),
      groupId: config.sinkGroupId,
    } : {}),
    ...(readsAws ? { regions: config.regions, accounts, ...(config.awsEndpointUrl ? { awsEndpoint: config.awsEndpointUrl } : {}) } : {}),
    ...(parts.snapshot && !parts.once ? { snapshotIntervalSeconds: config.snapshotIntervalSeconds } : {}),
    ...(parts.listen ? { pollSeconds: config.listener.pollSeconds } : {}),
  };
}
