/**
 * Baseline: the most the embedded ClickHouse engine writes. Computes in memory the rows the sink would write for
 * the workload (untimed), then times bare bulk inserts of them into fresh tables with the project's DDL.
 * Runs in a process of its own (one chDB data directory per process); prints its figures as JSON.
 */
import { applySchema, insertLines, openClickHouse } from '../../services/shared/clickhouse.js';
import { applyChange, type AppliedState, type CurrentRow, type HistoryRow } from '../../services/sink/change-applier.js';
import { JSON_TEXT_COLUMNS, RowLines } from '../../services/sink/row-block.js';
import { ownCpuSeconds } from '../lib/environment.js';
import { generateWorkload } from '../lib/workload.js';

const [events, path, database] = [Number(process.env.BENCH_EVENTS), process.env.BENCH_CHDB_PATH!, process.env.BENCH_DATABASE!];
const current: CurrentRow[] = [];
const history: HistoryRow[] = [];
const states = new Map<string, AppliedState>();
let offset = 0;
for (const change of generateWorkload({ events, region: 'us-east-2', accountId: '123456789012' })) {
  const result = applyChange(states.get(change.arn), change, { partition: 0, offset: offset++ });
  if (!result) continue;
  states.set(change.arn, result.state);
  if (result.current) current.push(result.current);
  if (result.history) history.push(result.history);
}
states.clear();

const client = await openClickHouse({ kind: 'chdb', path });
await applySchema(client, database);
const BATCH = 50_000;
// The same bytes the sink writes (JSONCompactEachRow), serialized before the clock starts: only the engine is timed.
const blocks: { table: string; lines: RowLines }[] = [];
for (const [table, rows, jsonColumns] of [
  ['aws_apigatewayv2_api_integrations_history', history, JSON_TEXT_COLUMNS.history],
  ['aws_apigatewayv2_api_integrations', current, JSON_TEXT_COLUMNS.current],
] as const) {
  for (let i = 0; i < rows.length; i += BATCH) {
    const lines = new RowLines(jsonColumns);
    for (const row of rows.slice(i, i + BATCH)) lines.add(row);
    blocks.push({ table: `${database}.${table}`, lines });
  }
}
const started = performance.now();
const cpuBefore = ownCpuSeconds();
for (const { table, lines } of blocks) await insertLines(client, table, lines.columns, lines.bytes());
const ms = performance.now() - started;
// The engine's threads included: chDB runs inside this process.
const cpuSeconds = ownCpuSeconds() - cpuBefore;
await client.close();
process.stdout.write(`${JSON.stringify({ ms, cpuSeconds, currentRows: current.length, historyRows: history.length })}\n`);
