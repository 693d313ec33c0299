// First: the engine's allocator reads its settings when chDB loads.
import './engine-allocator.js';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ChdbConnection } from 'chdb/connection';
import { clickHouseClientLog } from './clickhouse-log.js';
import type { ClickHouseTarget } from './config.js';
import { DirectoryHeldError, directoryHolder } from './engine-directory.js';
import { ConfigError, DependencyError, describeError } from './errors.js';
import type { Logger } from './logger.js';
import { RetriesExhaustedError, createRetry } from './retry.js';

export type { ClickHouseClient };
type ClientConnection = NonNullable<Parameters<typeof createClient>[0]>['connection'];

const DDL_DIR = new URL('../../schemas/clickhouse/', import.meta.url);
const ENGINE_CONFIG = fileURLToPath(new URL('./embedded-engine.xml', import.meta.url));

/** Where a target's tables are, for messages: the server's URL (no credentials), or the absolute data directory. */
export function locationOf(target: ClickHouseTarget): string {
  return target.kind === 'http' ? target.url : resolve(target.path);
}

/** Whether opening ClickHouse failed because another process holds the embedded engine's directory. */
export function isDirectoryLocked(error: unknown): boolean {
  return error instanceof DirectoryHeldError;
}

/** Throws when another process holds the embedded engine's directory `path`. */
function refuseHeldDirectory(path: string): void {
  const holder = directoryHolder(path);
  if (holder) throw new DirectoryHeldError(path, holder);
}

/** ClickHouse's codes for credentials it refuses: AUTHENTICATION_FAILED, UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD. */
const REFUSED_CREDENTIALS = new Set(['516', '192', '193', '194']);

const refusesCredentials = (error: unknown) => REFUSED_CREDENTIALS.has(String((error as { code?: unknown } | undefined)?.code));

/**
 * Opens ClickHouse and checks that it answers, with a query: a server's `/ping` takes no credentials, and wrong ones
 * would otherwise show only at the first statement, after the topic is made and the schemas registered. The embedded
 * engine's directory may be held for a moment by a short-lived process (a `query`): that is waited out for
 * `lockWaitMs`. The client's own log lines go to `logger` at debug level (see clickHouseClientLog).
 */
export async function openClickHouse(target: ClickHouseTarget, { lockWaitMs = 20_000, logger }: { lockWaitMs?: number; logger?: Logger } = {}): Promise<ClickHouseClient> {
  const retry = createRetry({ retries: Math.ceil(lockWaitMs / 1000), initialDelayMs: 500, maxDelayMs: 2000, shouldRetry: isDirectoryLocked });
  const log = clickHouseClientLog(logger);
  try {
    return await retry(async () => {
      const client = await createClickHouse(target, log);
      const result = await client.ping({ select: true });
      if (result.success) return client;
      await client.close().catch(() => undefined);
      throw result.error;
    });
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw notOpened(target, error);
  }
}

/** Why `target` could not be opened, as the one line a start stops with, naming the variable to change. */
function notOpened(target: ClickHouseTarget, error: unknown): DependencyError {
  const where = locationOf(target);
  const cause = error instanceof RetriesExhaustedError ? error.cause : error;
  if (isDirectoryLocked(cause)) return new DependencyError('CLICKHOUSE_URL', `cannot open the embedded ClickHouse directory ${where}: ${(cause as Error).message}`, error);
  if (target.kind === 'http' && target.url.startsWith('https:') && /certificate/i.test(describeError(cause))) {
    return new DependencyError('CLICKHOUSE_CA_FILE', `the TLS certificate of the ClickHouse server at ${where} is not trusted (${describeError(cause)}): set CLICKHOUSE_CA_FILE to the CA that signs it`, error);
  }
  if (target.kind === 'http' && refusesCredentials(cause)) {
    return new DependencyError('CLICKHOUSE_URL', `ClickHouse at ${where} refused the credentials of "${target.username ?? 'default'}" (${describeError(cause)})`, error);
  }
  return new DependencyError('CLICKHOUSE_URL', `ClickHouse does not answer at ${where} (${describeError(cause)})`, error);
}

const embedded = new WeakMap<ClickHouseClient, ChdbConnection>();

/**
 * Inserts rows already serialized as JSONCompactEachRow lines; a JSON object in a String column's place is stored
 * as its text. The embedded engine takes the bytes as they are (chDB's raw insert parses them on its own threads;
 * the client's insert would splice them into the SQL text, about twice the engine's work); a server gets them as
 * the request body.
 */
export async function insertLines(
  client: ClickHouseClient, table: string, columns: readonly string[], lines: Buffer, settings: Record<string, string> = {},
): Promise<void> {
  if (lines.length === 0) return;
  const chdb = embedded.get(client);
  if (chdb) {
    await chdb.chdb.rawInsert({
      table, columns, values: lines, format: 'JSONCompactEachRow',
      settings: { ...settings, input_format_json_read_objects_as_strings: '1', date_time_input_format: 'best_effort' },
    });
    return;
  }
  // The client's insert takes JSON formats only as objects to serialize: exec sends the bytes as the body.
  const { stream } = await client.exec({
    query: `INSERT INTO ${table} (${columns.join(', ')}) FORMAT JSONCompactEachRow`,
    values: Readable.from([lines], { objectMode: false }),
    clickhouse_settings: { ...settings, input_format_json_read_objects_as_strings: 1 },
  });
  stream.resume();
  await finished(stream);
}

/** One client for both modes: a ClickHouse server over HTTP, or the embedded chDB engine plugged in as its connection. */
async function createClickHouse(target: ClickHouseTarget, log: ReturnType<typeof clickHouseClientLog>): Promise<ClickHouseClient> {
  const settings = { date_time_input_format: 'best_effort' as const };
  if (target.kind === 'http') {
    return createClient({
      url: target.url, username: target.username, password: target.password, clickhouse_settings: settings, request_timeout: 120_000, log,
      // Query parameters go in the URL, where a proxy in front of the server refuses them past its header limit
      // (nginx's is 8 KiB): the sink's look-ups name up to 200 keys, a marker every API of a region. Past 4 KiB they
      // go in the body (multipart/form-data; ClickHouse 22.8 and later). Only query() sends them there.
      use_multipart_params_auto: true,
      ...(target.ca ? { tls: { ca_cert: Buffer.from(target.ca) } } : {}),
    });
  }
  const path = resolve(target.path);
  try {
    mkdirSync(path, { recursive: true });
  } catch (error) {
    // A file where the directory goes, or a place this user cannot write: no engine will open there, whenever asked.
    throw new ConfigError('CLICKHOUSE_URL', `cannot make the embedded engine's directory ${path} (${describeError(error)})`);
  }
  const chdb = await openEmbedded(path);
  // chdb types its connection against @clickhouse/client-common, which @clickhouse/client now bundles under
  // its own names; the shapes are the same (chdb's parity suite runs against this client).
  const client = createClient({ connection: chdb as unknown as ClientConnection, clickhouse_settings: settings, log });
  embedded.set(client, chdb);
  return client;
}

/**
 * A connection to the embedded engine at `path`. The first connection a process opens starts the engine, which
 * without a config file named reads config.xml or clickhouse-local.xml from the working directory: a ClickHouse
 * server's there would put the tables under its <path> (chDB refuses a --path argument for that very reason), a
 * malformed one would stop the engine. chdb's client connection takes no engine arguments, so a session that names
 * the project's (empty) config file opens first; the engine it started serves the client's connection, which
 * outlives it.
 *
 * chDB is loaded here, on first use, not with this module: its library maps ~150 MiB of resident pages into every
 * process that loads it, which a process talking to a ClickHouse server (or to none: a snapshot, a listener) never
 * uses. The allocator settings above are in place before.
 */
async function openEmbedded(path: string): Promise<ChdbConnection> {
  // The holder is looked for before the engine is asked (which would print its own refusal on stderr), and again
  // after it refused: only then is its failure a held directory, which openClickHouse waits out.
  refuseHeldDirectory(path);
  const [{ Session }, { createChdbConnection }] = await Promise.all([import('chdb'), import('chdb/connection')]);
  const startEngine = () => new Session(path, { connectionArgs: [`--config-file=${ENGINE_CONFIG}`] });
  let starter: InstanceType<typeof Session>;
  try {
    starter = startEngine();
  } catch (error) {
    refuseHeldDirectory(path);
    // A short-lived holder (a `query`) may have made the engine refuse and let go before the look above: a held
    // directory leaves no trace once let go, so one more start tells it from a directory the engine cannot open.
    try {
      starter = startEngine();
    } catch {
      refuseHeldDirectory(path);
      throw error;
    }
  }
  try {
    return createChdbConnection({ path });
  } finally {
    starter.close();
  }
}

/** The DDL statements of schemas/clickhouse, in file order, for this database and (optionally) cluster. */
function schemaStatements(database: string, cluster?: string): string[] {
  const files = readdirSync(DDL_DIR).filter((name) => name.endsWith('.sql')).sort();
  return files.map((name) => {
    let sql = readFileSync(new URL(name, DDL_DIR), 'utf8')
      .split('\n')
      .filter((line) => !line.startsWith('--'))
      .join('\n')
      .trim()
      .replace(/;$/, '')
      .replaceAll('{db}', database)
      .replaceAll('{on_cluster}', cluster ? `ON CLUSTER ${cluster}` : '');
    // Cluster mode is configuration: the same tables with replicated engines (the server's default replica path).
    if (cluster) sql = sql.replace(/ENGINE = (\w*MergeTree)/, 'ENGINE = Replicated$1');
    return sql;
  });
}

/** Creates the database, tables and views when missing. */
export async function applySchema(client: ClickHouseClient, database: string, cluster?: string): Promise<void> {
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database} ${cluster ? `ON CLUSTER ${cluster}` : ''}` });
  for (const statement of schemaStatements(database, cluster)) await client.command({ query: statement });
}

/**
 * The tables and views of schemas/clickhouse; those of them `database` does not hold (all when it does not exist);
 * and the other databases that hold the first of them, the current-state table.
 */
export async function schemaObjects(client: ClickHouseClient, database: string): Promise<{ expected: string[]; missing: string[]; elsewhere: string[] }> {
  const expected = schemaStatements(database).map((sql) => /^CREATE (?:OR REPLACE )?\w+ (?:IF NOT EXISTS )?\w+\.(\w+)/.exec(sql)![1]!);
  const tables = await queryRows<{ database: string; name: string }>(client, 'SELECT database, name FROM system.tables WHERE name IN {names:Array(String)}', { names: expected });
  const held = new Set(tables.filter((table) => table.database === database).map((table) => table.name));
  const elsewhere = tables.filter((table) => table.database !== database && table.name === expected[0]).map((table) => table.database).sort();
  return { expected, missing: expected.filter((name) => !held.has(name)), elsewhere };
}

export async function queryRows<T>(client: ClickHouseClient, query: string, params: object = {}): Promise<T[]> {
  const result = await client.query({ query, query_params: params as Record<string, unknown>, format: 'JSONEachRow' });
  return result.json<T>();
}
