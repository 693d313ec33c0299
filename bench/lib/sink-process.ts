/** The sink as users run it (`apigw-stream sink`), in a process of its own, and what the benchmarks check of it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Admin } from 'kafkajs';
import { openClickHouse, queryRows } from '../../services/shared/clickhouse.js';
import { sleep } from '../../services/shared/retry.js';
import { PROJECT_ROOT } from '../../stack/layout.js';
import { machine } from './environment.js';
import type { BenchStack } from './feed.js';

const COMMAND = join(PROJECT_ROOT, 'bin/apigw-stream.js');
/** The node flags the installed command runs with: those on its `#!/usr/bin/env -S node …` line. */
const COMMAND_NODE_FLAGS = (/^#!.*?\bnode\b(.*)$/.exec(readFileSync(COMMAND, 'utf8').split('\n', 1)[0]!)?.[1] ?? '').split(/\s+/).filter(Boolean);

/**
 * Starts `apigw-stream sink` on the topic with its own group, writing to `clickhouseUrl` (`chdb://PATH`: an embedded
 * engine directory of its own). BENCH_SINK_NODE_ARGS passes node flags to it, e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/prof` to profile it; BENCH_SINK_LOG_LEVEL shows its log.
 */
export function spawnSink(stack: BenchStack, topic: string, groupId: string, clickhouseUrl: string): { sink: ChildProcess; exited: Promise<unknown> } {
  const nodeArgs = process.env.BENCH_SINK_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const sink = spawn(process.execPath, [...COMMAND_NODE_FLAGS, ...nodeArgs, COMMAND, 'sink'], {
    env: { ...process.env, KAFKA_BROKERS: stack.brokers.join(','), SCHEMA_REGISTRY_URL: stack.registryUrl, CLICKHOUSE_URL: clickhouseUrl, CLICKHOUSE_DATABASE: 'bench', APIGW_TOPIC: topic, APIGW_SINK_GROUP_ID: groupId, LOG_LEVEL: process.env.BENCH_SINK_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', process.env.BENCH_SINK_LOG_LEVEL ? 'inherit' : 'ignore', 'inherit'],
  });
  return { sink, exited: new Promise((resolve) => sink.once('exit', resolve)) };
}

/** Checks every 100 ms until `done` says so; fails once the sink has exited instead. */
async function whileSinkRuns(sink: ChildProcess, done: () => Promise<boolean>): Promise<void> {
  while (!(await done())) {
    if (sink.exitCode !== null) throw new Error(`the sink exited with ${sink.exitCode}`);
    await sleep(100);
  }
}

/** Waits until the group has committed every partition's offset up to `ends` (fetchTopicOffsets), while the sink runs. */
export function waitForCommits(admin: Admin, sink: ChildProcess, groupId: string, topic: string, ends: { partition: number; high: string }[]): Promise<void> {
  return whileSinkRuns(sink, async () => {
    const committed = (await admin.fetchOffsets({ groupId, topics: [topic] }))[0]!.partitions;
    return ends.every((end) => Number(committed.find((p) => p.partition === end.partition)?.offset ?? -1) >= Number(end.high));
  });
}

/** Waits until the sink's consumer has joined its group: from then on, its CPU is the work it is given. */
export function waitForMember(admin: Admin, sink: ChildProcess, groupId: string): Promise<void> {
  return whileSinkRuns(sink, async () => {
    const { groups: [group] } = await admin.describeGroups([groupId]);
    return group?.state === 'Stable' && group.members.length > 0;
  });
}

/** The sink's tables hold exactly the workload's final state: a fast run that lost rows measures nothing. */
export async function verifiedTables(path: string, expected: { live: number; historyRows: number }) {
  const client = await openClickHouse({ kind: 'chdb', path });
  const [counts] = await queryRows<{ live: string; history: string }>(client,
    `SELECT (SELECT count() FROM bench.aws_apigatewayv2_api_integrations FINAL WHERE is_deleted = 0) AS live,
            (SELECT count() FROM bench.aws_apigatewayv2_api_integrations_history) AS history`);
  const env = await machine(client);
  await client.close();
  rmSync(path, { recursive: true, force: true });
  if (Number(counts!.live) !== expected.live || Number(counts!.history) !== expected.historyRows) {
    throw new Error(`the sink's tables are wrong: ${JSON.stringify(counts)} expected live ${expected.live}, history ${expected.historyRows}`);
  }
  return { counts: counts!, env };
}
