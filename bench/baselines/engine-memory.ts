/**
 * Baseline of the memory benchmark: the embedded ClickHouse engine alone, writing the rows the sink writes in
 * blocks of the sink's size, read one at a time from the files the bulk-insert baseline left (see there). Its
 * process holds nothing else (no consumer, no state, no rows ahead): its peak resident memory is the least any sink
 * that embeds this engine can take. Prints its figures as JSON, with its exact peak (VmHWM) read as it ends.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applySchema, insertLines, openClickHouse } from '../../services/shared/clickhouse.js';
import { highWaterMiB } from '../lib/environment.js';

const [blocksDir, path, database] = [process.env.BENCH_BLOCKS_DIR!, process.env.BENCH_CHDB_PATH!, process.env.BENCH_DATABASE!];
const { blocks } = JSON.parse(readFileSync(join(blocksDir, 'blocks.json'), 'utf8')) as { blocks: { table: string; columns: string[]; file: string }[] };

const client = await openClickHouse({ kind: 'chdb', path });
await applySchema(client, database);
const started = performance.now();
for (const { table, columns, file } of blocks) await insertLines(client, `${database}.${table}`, columns, readFileSync(join(blocksDir, file)));
const ms = performance.now() - started;
await client.close();
process.stdout.write(`${JSON.stringify({ ms, blocks: blocks.length, highWaterMiB: highWaterMiB(process.pid) })}\n`);
