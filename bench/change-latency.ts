/**
 * Benchmark 5: from a change becoming visible in CloudTrail (the test server) to its row being readable in the
 * current-state table, through listener, Kafka and sink, next to the configured poll interval.
 */
import { ApiGatewayV2Client, CreateApiCommand, CreateIntegrationCommand, UpdateIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { openPipeline } from '../cli/pipeline.js';
import { queryRows } from '../services/shared/clickhouse.js';
import { loadConfig } from '../services/shared/config.js';
import { createLogger } from '../services/shared/logger.js';
import { createMetrics } from '../services/shared/metrics.js';
import { sleep } from '../services/shared/retry.js';
import { STACK_DIR } from '../stack/layout.js';
import { startCloudTrailServer } from '../test/support/cloudtrail-server.js';
import { PRINCIPALS } from '../test/support/recorded-changes.js';
import { deleteTopicsStartingWith } from '../test/support/topics.js';
import { machine } from './lib/environment.js';
import type { BenchResult } from './lib/report.js';

const POLL_SECONDS = 1;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

export async function runChangeLatency(stack: { brokers: string[]; registryUrl: string; motoEndpoint: string }, quick: boolean): Promise<BenchResult[]> {
  const changes = quick ? 60 : 600;
  const integrations = 100; // each integration changes at most once per 4 s: one change per poll and resource
  const perSecond = 25;
  const region = 'ap-south-1';
  const id = `latency${Date.now().toString(36)}`;
  const dataDir = join(STACK_DIR, 'bench-data', id);
  process.env.AWS_ACCESS_KEY_ID ??= 'bench';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';
  const aws = new ApiGatewayV2Client({ region, endpoint: stack.motoEndpoint });
  const trail = await startCloudTrailServer();
  const api = await aws.send(new CreateApiCommand({ Name: id, ProtocolType: 'HTTP' }));
  const ids: string[] = [];
  for (let i = 0; i < integrations; i++) {
    ids.push((await aws.send(new CreateIntegrationCommand({ ApiId: api.ApiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: `https://l${i}.example.com`, PayloadFormatVersion: '1.0' }))).IntegrationId!);
  }
  const config = loadConfig({
    ...process.env, KAFKA_BROKERS: stack.brokers.join(','), SCHEMA_REGISTRY_URL: stack.registryUrl, AWS_REGIONS: region,
    AWS_ENDPOINT_URL: stack.motoEndpoint, AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, CLICKHOUSE_URL: `chdb://${dataDir}`, CLICKHOUSE_DATABASE: 'latency',
    APIGW_TOPIC: `bench.${id}`, APIGW_SINK_GROUP_ID: `bench.${id}`, APIGW_LISTENER_POLL_SECONDS: String(POLL_SECONDS), APIGW_LISTENER_LOOKBACK_HOURS: '0.1', LOG_LEVEL: 'warn',
  });
  const pipeline = await openPipeline({ config, logger: createLogger('warn'), metrics: createMetrics(), snapshot: false, listen: true, sink: true, interactive: false });
  const stop = new AbortController();
  const listening = pipeline.listener!.run(stop.signal);

  const visibleAt = new Map<string, number>();
  const latencies: number[] = [];
  let observing = true;
  const observer = (async () => {
    while (observing) {
      const rows = await queryRows<{ source_id: string }>(pipeline.clickhouse!,
        `SELECT source_id FROM latency.aws_apigatewayv2_api_integrations FINAL WHERE source_type = 'CLOUDTRAIL'`);
      const now = Date.now();
      for (const { source_id } of rows) {
        const at = visibleAt.get(source_id);
        if (at !== undefined) {
          latencies.push(now - at);
          visibleAt.delete(source_id);
        }
      }
      await sleep(20);
    }
  })();

  const started = Date.now();
  for (let n = 0; n < changes; n++) {
    const integrationId = ids[n % integrations]!;
    await aws.send(new UpdateIntegrationCommand({ ApiId: api.ApiId, IntegrationId: integrationId, TimeoutInMillis: 1000 + n }));
    const eventId = trail.record({ region, eventName: 'UpdateIntegration', principal: PRINCIPALS.ci, requestParameters: { apiId: api.ApiId, integrationId, timeoutInMillis: 1000 + n }, responseElements: null });
    visibleAt.set(eventId, Date.now());
    const due = started + ((n + 1) * 1000) / perSecond;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  const deadline = Date.now() + 30_000;
  while (visibleAt.size > 0 && Date.now() < deadline) await sleep(100);
  observing = false;
  await observer;
  stop.abort();
  await listening;
  const env = await machine(pipeline.clickhouse);
  await pipeline.close();
  await trail.close();
  aws.destroy();
  rmSync(dataDir, { recursive: true, force: true });
  await deleteTopicsStartingWith(stack.brokers, config.topic);

  const sorted = [...latencies].sort((a, b) => a - b);
  const [p50, p95, p99] = [50, 95, 99].map((p) => percentile(sorted, p));
  const bound = POLL_SECONDS * 1000 + 1000;
  return [{
    name: 'change-latency',
    size: quick ? 'quick' : 'full',
    measuredAt: new Date().toISOString(),
    machine: env,
    target: `p99 under the poll interval plus one second (${bound} ms)`,
    met: visibleAt.size === 0 && p99! < bound,
    summary: `p99 ${p99} ms = ${Math.round((p99! / (POLL_SECONDS * 1000)) * 100) / 100} of the ${POLL_SECONDS} s poll interval; p50 ${p50} ms, p95 ${p95} ms over ${latencies.length} changes${visibleAt.size ? `, ${visibleAt.size} never seen` : ''}`,
    figures: { changes, changesPerSecond: perSecond, integrations, pollSeconds: POLL_SECONDS, p50Ms: p50, p95Ms: p95, p99Ms: p99, maxMs: sorted.at(-1), observed: latencies.length, neverSeen: visibleAt.size },
  }];
}
