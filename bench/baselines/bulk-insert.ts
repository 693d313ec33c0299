/**
 * Baseline: the most the embedded ClickHouse engine writes. Computes in memory the rows the sink would write for
 * the workload (untimed), then times bare bulk inserts of them into fresh tables with the project's DDL.
 * Runs in a process of its own (one chDB data directory per process); prints its figures as JSON.
 *
 * With BENCH_BLOCKS_DIR, it then leaves the same rows there in blocks of the sink's size, for the engine-memory
 * baseline (whose process must not compute them: that would be memory the sink's engine does not need).
 */
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applySchema, insertLines, openClickHouse } from '../../services/shared/clickhouse.js';
import { SOLE_WRITER_BLOCK } from '../../services/sink/index.js';
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
const TABLES = [
  ['aws_apigatewayv2_api_integrations_history', history, JSON_TEXT_COLUMNS.history],
  ['aws_apigatewayv2_api_integrations', current, JSON_TEXT_COLUMNS.current],
] as const;

/** The rows as the sink writes them (JSONCompactEachRow), a block of `rowsPerBlock` of each table in turn. */
function* lineBlocks(rowsPerBlock: number): Generator<{ table: string; lines: RowLines }> {
  for (let i = 0; i < Math.max(history.length, current.length); i += rowsPerBlock) {
    for (const [table, rows, jsonColumns] of TABLES) {
      const lines = new RowLines(jsonColumns);
      for (const row of rows.slice(i, i + rowsPerBlock)) lines.add(row);
      if (lines.count > 0) yield { table, lines };
    }
  }
}

// Serialized, each block's lines in one buffer, before the clock starts: only the engine is timed.
const blocks = [...lineBlocks(50_000)].map(({ table, lines }) => ({ table, columns: lines.columns, bytes: lines.bytes() }));
if (process.env.BENCH_START_ON_STDIN) {
  // Run beside the decoding consumer: say the rows are ready, and start when told to.
  process.stdout.write('ready\n');
  await once(process.stdin, 'data');
}
const started = performance.now();
const cpuBefore = ownCpuSeconds();
for (const { table, columns, bytes } of blocks) await insertLines(client, `${database}.${table}`, columns, bytes);
const ms = performance.now() - started;
// The engine's threads included: chDB runs inside this process.
const cpuSeconds = ownCpuSeconds() - cpuBefore;
await client.close();

const blocksDir = process.env.BENCH_BLOCKS_DIR;
if (blocksDir) {
  mkdirSync(blocksDir, { recursive: true });
  // A sink's block holds at least minRows rows of all tables, about as many history rows as current ones.
  const sinkBlocks = [];
  for (const { table, lines } of lineBlocks(SOLE_WRITER_BLOCK.minRows / 2)) {
    const file = `${String(sinkBlocks.length).padStart(5, '0')}.jsonl`;
    writeFileSync(join(blocksDir, file), lines.bytes());
    sinkBlocks.push({ table, columns: lines.columns, file });
  }
  writeFileSync(join(blocksDir, 'blocks.json'), JSON.stringify({ blocks: sinkBlocks }));
}
process.stdout.write(`${JSON.stringify({ ms, cpuSeconds, currentRows: current.length, historyRows: history.length })}\n`);
