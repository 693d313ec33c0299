import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { sleep } from '../services/shared/retry.js';
import { VERSION } from '../services/shared/version.js';
import { loadConfig } from '../services/shared/config.js';
import { DependencyError } from '../services/shared/errors.js';
import type { ChangeFilter, DriftQueries, InventoryFilter, ScopeFilter } from '../services/query/drift-queries.js';
import { findEndpoint, type Endpoint } from '../services/query/query-endpoint.js';
import { queriesOver } from '../services/query/query-server.js';
import { COUNT_EXPECTED, QueryInputError, isCount, parseTimeInput } from '../services/query/time-input.js';
import { emit, formatOption, type Format, type Row } from './output.js';

const NOTHING_WRITTEN = 'nothing has written there yet (a `sink` or `run` does from its start); check that CLICKHOUSE_URL and CLICKHOUSE_DATABASE name what it uses';
/** What to do about a database that lacks tables: `elsewhere` names the databases that hold the current state. */
function missingHint(lacksCurrentState: boolean, elsewhere: string[]): string {
  // Holding the current-state table, it was made by a release whose schema had less.
  if (!lacksCurrentState) return 'an earlier release made it: a `sink` or `run` of this one adds the rest at its start';
  if (elsewhere.length === 0) return NOTHING_WRITTEN;
  return `${elsewhere.join(', ')} there ${elsewhere.length === 1 ? 'does' : 'do'}: set CLICKHOUSE_DATABASE to ask ${elsewhere.length === 1 ? 'it' : 'one'}`;
}

/**
 * Asks the process that holds the embedded engine when there is one; otherwise opens ClickHouse directly. A
 * holder that is still starting announces itself within the lock wait.
 */
async function withQueries<T>(run: (queries: DriftQueries) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const target = config.clickhouse;
  const announced = () => (target.kind === 'chdb' ? findEndpoint(target.path) : undefined);
  const endpoint = announced();
  if (endpoint) return run(askHolder(endpoint));
  // A query reads what a sink wrote: it does not start an engine in a directory nothing has written (a mistyped path).
  if (target.kind === 'chdb' && !existsSync(target.path)) {
    throw new DependencyError('CLICKHOUSE_URL', `no embedded ClickHouse data at ${resolve(target.path)}: ${NOTHING_WRITTEN}`);
  }
  // Loaded on use: asked through a running sink, a query needs neither the engine nor the ClickHouse client.
  const [{ isDirectoryLocked, locationOf, openClickHouse, schemaObjects }, { createDriftQueries }] = await Promise.all([
    import('../services/shared/clickhouse.js'), import('../services/query/drift-queries.js'),
  ]);
  let client;
  try {
    client = await openClickHouse(target, { lockWaitMs: 0 });
  } catch (error) {
    const later = error instanceof DependencyError && isDirectoryLocked(error.cause) ? await waitForAnnouncement(announced) : undefined;
    if (later) return run(askHolder(later));
    throw error;
  }
  try {
    const database = config.clickhouseDatabase;
    const { expected, missing, elsewhere } = await schemaObjects(client, database);
    if (missing.length > 0) {
      const what = missing.length === expected.length ? 'holds no apigw-stream tables' : `lacks ${missing.join(', ')}`;
      throw new DependencyError('CLICKHOUSE_DATABASE', `database ${database} at ${locationOf(target)} ${what}; ${missingHint(missing.includes(expected[0]!), elsewhere)}`);
    }
    return await run(createDriftQueries({ client, database }));
  } finally {
    await client.close();
  }
}

async function waitForAnnouncement(announced: () => Endpoint | undefined, timeoutMs = 15_000): Promise<Endpoint | undefined> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(250)) {
    const endpoint = announced();
    if (endpoint) return endpoint;
  }
  return undefined;
}

/**
 * The queries of the process that holds the engine. Another release answers as it does (an older one ignores the
 * options it does not know): said, so that an answer during an upgrade is not taken for this release's.
 */
function askHolder(endpoint: Endpoint): DriftQueries {
  if (endpoint.version !== VERSION) {
    process.stderr.write(`apigw-stream: warning: the process holding the engine (pid ${endpoint.pid}) runs apigw-stream ${endpoint.version ?? 'of an earlier release'}, `
      + `this query ${VERSION}: it answers as its release does; restart it to ask this one\n`);
  }
  return queriesOver(endpoint.url);
}

/** The filters given, for a message about what matched them. */
const filtered = (opts: InventoryFilter) => {
  const given = Object.entries(filterOf(opts)).filter(([, value]) => value !== undefined).map(([name, value]) => `--${name} ${value}`);
  return given.length > 0 ? ` matching ${given.join(' ')}` : '';
};

const INVENTORY_COLUMNS = ['aws_api_id', 'integration_id', 'integration_type', 'integration_uri', 'timeout_in_millis', 'description', 'version', 'event_time', 'principal_arn'];

function scopeOptions(command: Command): Command {
  return command
    .option('--account <id>', 'only this AWS account')
    .option('--region <region>', 'only this region')
    .option('--api <api-id>', 'only this API (AWS ApiId)');
}

function filterOptions(command: Command): Command {
  return scopeOptions(command).option('--type <integration-type>', 'only this integration type (AWS_PROXY, HTTP_PROXY, AWS, HTTP, MOCK)');
}

const filterOf = (opts: InventoryFilter): InventoryFilter => ({ account: opts.account, region: opts.region, api: opts.api, type: opts.type });

/** A range in words, for an empty answer: "since …" when it runs up to now. */
const between = (since: number, until: number, untilText: string) =>
  (untilText === 'now' ? `since ${new Date(since).toISOString()}` : `between ${new Date(since).toISOString()} and ${new Date(until).toISOString()}`);

function positiveCount(text: string): number {
  const count = Number(text);
  if (!isCount(count)) throw new InvalidArgumentError(`${COUNT_EXPECTED}.`);
  return count;
}

/** `--from` and `--to` (or `--since` and `--until`), the earlier first. */
function timeRange(names: [string, string], texts: [string, string]): [number, number] {
  const [from, to] = [parseTimeInput(names[0], texts[0]), parseTimeInput(names[1], texts[1])];
  // Answered as asked, the range would run backwards: a diff's additions shown as removals, a count of nothing.
  if (from > to) throw new QueryInputError(texts[0], `${names[0]} (${new Date(from).toISOString()}) is later than ${names[1]} (${new Date(to).toISOString()}); give the earlier moment first`);
  return [from, to];
}

export function queryCommand(): Command {
  const query = new Command('query')
    .description('Drift questions over the tables: current state, history of one integration, the inventory at a moment, what changed between two moments, who changed what')
    .addHelpText('after', `
Times are ISO 8601 (2026-11-25T10:00:00Z; UTC unless an offset is given), "now", or a duration ago ("2h ago", "3 days ago").
With the embedded engine held by a running \`sink\` or \`run\`, the query goes to that process's local query API.`);

  filterOptions(query.command('current').description('the live integrations')).addOption(formatOption())
    .action(async (opts: InventoryFilter & { format: Format }) => {
      const rows = await withQueries((q) => q.current(filterOf(opts)));
      emit(opts.format, rows, rows as unknown as Row[], INVENTORY_COLUMNS, `no live integrations${filtered(opts)}`);
    });

  query.command('history').description('every version of one integration, oldest first, with the fields each changed')
    .argument('<integration>', 'integration ARN, or api-id/integration-id').addOption(formatOption())
    .action(async (ref: string, opts: { format: Format }) => {
      const entries = await withQueries((q) => q.history(ref));
      const rows = entries.flatMap((entry) => (entry.changes.length > 0 ? entry.changes : [{ field: null, old: null, new: null }])
        .map((change) => ({ ...entry, ...change })));
      emit(opts.format, entries, rows, ['version', 'operation', 'event_time', 'source_type', 'cloudtrail_event_name', 'principal_arn', 'field', 'old', 'new'], `no versions of ${ref}`);
    });

  filterOptions(query.command('as-of').description('the inventory exactly as it was at a moment')
    .argument('<time>', 'the moment')).addOption(formatOption())
    .action(async (time: string, opts: InventoryFilter & { format: Format }) => {
      const at = parseTimeInput('time', time);
      const rows = await withQueries((q) => q.asOf(at, filterOf(opts)));
      emit(opts.format, rows, rows as unknown as Row[], INVENTORY_COLUMNS, `no integrations at ${new Date(at).toISOString()}${filtered(opts)}`);
    });

  filterOptions(query.command('diff').description('integrations added, removed and changed between two moments, field by field (maps key by key)')
    .requiredOption('--from <time>', 'the earlier moment').option('--to <time>', 'the later moment', 'now')).addOption(formatOption())
    .action(async (opts: InventoryFilter & { from: string; to: string; format: Format }) => {
      const [from, to] = timeRange(['--from', '--to'], [opts.from, opts.to]);
      const diff = await withQueries((q) => q.diff(from, to, filterOf(opts)));
      const rows = [
        ...diff.added.map((view) => ({ change: 'added', arn: view.arn })),
        ...diff.removed.map((view) => ({ change: 'removed', arn: view.arn })),
        ...diff.changed.flatMap(({ arn, changes }) => changes.map((c) => ({ change: 'changed', arn, ...c }))),
      ];
      emit(opts.format, diff, rows, ['change', 'arn', 'field', 'old', 'new'], `no changes between ${new Date(from).toISOString()} and ${new Date(to).toISOString()}${filtered(opts)}`);
    });

  scopeOptions(query.command('changes').description('every change between two moments, the latest first: who made it, and the fields it changed')
    .option('--since <time>', 'only changes from this moment on', '1970-01-01').option('--until <time>', 'only changes up to this moment', 'now')
    .option('--principal <text>', 'only changes whose CloudTrail principal ARN contains this (an ARN, a role or a session name)')
    // A table a terminal can still show.
    .addOption(new Option('--limit <count>', 'at most this many, the latest').default(1000).argParser(positiveCount)))
    .addOption(formatOption())
    .action(async (opts: ChangeFilter & { since: string; until: string; limit: number; format: Format }) => {
      const [since, until] = timeRange(['--since', '--until'], [opts.since, opts.until]);
      // One more than asked for: whether more matched is worth a line.
      const found = await withQueries((q) => q.changes(since, until, { ...filterOf(opts), principal: opts.principal }, opts.limit + 1));
      const shown = found.slice(0, opts.limit);
      const rows = shown.map((change) => ({ ...change, changed_fields: change.changed_fields.join(', ') }));
      const matching = `${filtered(opts)}${opts.principal === undefined ? '' : ` --principal ${opts.principal}`}`;
      emit(opts.format, shown, rows, ['event_time', 'operation', 'aws_api_id', 'integration_id', 'cloudtrail_event_name', 'principal_arn', 'source_ip', 'changed_fields'], `no changes ${between(since, until, opts.until)}${matching}`);
      if (found.length > opts.limit) process.stderr.write(`apigw-stream: the latest ${opts.limit} changes shown; more match: narrow the range or raise --limit\n`);
    });

  scopeOptions(query.command('who').description('changes grouped by principal, with counts and the latest change of each')
    .option('--since <time>', 'only changes from this moment on', '1970-01-01').option('--until <time>', 'only changes up to this moment', 'now'))
    .addOption(formatOption())
    .action(async (opts: ScopeFilter & { since: string; until: string; format: Format }) => {
      const [since, until] = timeRange(['--since', '--until'], [opts.since, opts.until]);
      const rows = await withQueries((q) => q.who(since, until, filterOf(opts)));
      emit(opts.format, rows, rows as unknown as Row[], ['principal_arn', 'changes', 'creates', 'updates', 'deletes', 'last_change_time', 'last_operation', 'last_event_name', 'last_change_arn'], `no changes ${between(since, until, opts.until)}${filtered(opts)}`);
    });
  return query;
}
