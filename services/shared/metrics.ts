import { createServer, type Server } from 'node:http';
import { getHeapStatistics } from 'node:v8';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Health } from './health.js';
import { listenOn } from './local-port.js';

/** Every metric apigw-stream exports, in one registry. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'apigw_stream_' });
  // The default metrics say how much heap is used, not how much node may use: the sink holds every live integration
  // in its heap (see the README's sizing), so its used heap against this is what to alert on.
  new Gauge({
    name: 'apigw_stream_nodejs_heap_size_limit_bytes', help: 'The most JavaScript heap this process may use (V8\'s heap_size_limit; node\'s --max-old-space-size raises it)', registers: [registry],
    collect() {
      this.set(getHeapStatistics().heap_size_limit);
    },
  });
  return {
    registry,
    eventsProduced: new Counter({ name: 'apigw_stream_events_produced_total', help: 'Change events acknowledged by Kafka', labelNames: ['source', 'op'], registers: [registry] }),
    awsCalls: new Counter({ name: 'apigw_stream_aws_calls_total', help: 'AWS API calls made', labelNames: ['account_id', 'region', 'operation'], registers: [registry] }),
    awsErrors: new Counter({ name: 'apigw_stream_aws_errors_total', help: 'AWS calls that failed after the SDK retries', labelNames: ['account_id', 'region', 'operation'], registers: [registry] }),
    awsThrottled: new Counter({ name: 'apigw_stream_aws_throttled_total', help: 'AWS calls refused for throttling and retried', labelNames: ['account_id', 'region', 'operation'], registers: [registry] }),
    cloudtrailEvents: new Counter({ name: 'apigw_stream_cloudtrail_events_total', help: 'CloudTrail events seen by the listener, by outcome: followed (emitted), collapsed (a later event of the same resource in the same poll stands for it), ignored, duplicate, unreadable (a followed event without what identifies its change, logged; the next snapshot reads it)', labelNames: ['account_id', 'region', 'outcome'], registers: [registry] }),
    listenerPollFailures: new Counter({ name: 'apigw_stream_listener_poll_failures_total', help: 'Listener polls of an account\'s region that failed (retried with backoff)', labelNames: ['account_id', 'region'], registers: [registry] }),
    listenerCheckpointAge: new Gauge({ name: 'apigw_stream_listener_checkpoint_age_seconds', help: 'Seconds between now and the end of the last committed CloudTrail window', labelNames: ['account_id', 'region'], registers: [registry] }),
    accounts: new Gauge({ name: 'apigw_stream_accounts', help: 'Accounts of the organization (AWS_ORGANIZATION_ROLE) by state: read, unreadable (its role could not be assumed at the last listing), or excluded (AWS_ORGANIZATION_EXCLUDE_ACCOUNTS)', labelNames: ['state'], registers: [registry] }),
    organizationListed: new Gauge({ name: 'apigw_stream_organization_listed_timestamp_seconds', help: 'When the organization\'s accounts (AWS_ORGANIZATION_ROLE) were last listed (Unix seconds): a listing that fails keeps the accounts of the last one, so an account that joins since is not read', registers: [registry] }),
    snapshotsCompleted: new Counter({ name: 'apigw_stream_snapshots_completed_total', help: 'Snapshots of one account and region completed', labelNames: ['account_id', 'region'], registers: [registry] }),
    snapshotLastCompleted: new Gauge({ name: 'apigw_stream_snapshot_last_completed_timestamp_seconds', help: 'When the last complete snapshot of one account and region had its completion marker acknowledged (Unix seconds): alert on time() minus it', labelNames: ['account_id', 'region'], registers: [registry] }),
    sinkMessages: new Counter({ name: 'apigw_stream_sink_messages_total', help: 'Messages consumed by the sink, by outcome: changed (a version written), reread, attributed (named who made a version a snapshot saw first), unchanged (redelivered or stale), marker, marker-skipped, dead-lettered', labelNames: ['outcome'], registers: [registry] }),
    historyRows: new Counter({ name: 'apigw_stream_history_rows_total', help: 'Rows written to the history table', labelNames: ['operation'], registers: [registry] }),
    sinkConsumerRestarts: new Counter({ name: 'apigw_stream_sink_consumer_restarts_total', help: 'Restarts of the sink\'s Kafka consumer after a failure kafkajs stopped retrying, each after a backoff (1 s, doubling to 30 s), by reason: topic-missing (the topic does not exist), failure', labelNames: ['reason'], registers: [registry] }),
    sinkTopicRemade: new Counter({ name: 'apigw_stream_sink_topic_remade_total', help: 'Times the sink found its group\'s committed offsets gone, because its topic was deleted and made again, and consumed the topic again from its start', registers: [registry] }),
    sinkReadFailures: new Counter({ name: 'apigw_stream_sink_read_failures_total', help: 'Reads of the ClickHouse tables (look-ups of keys, completion markers\' queries) that failed after their retries (the sink then consumed again from its committed offsets)', registers: [registry] }),
    // From the embedded engine's ~0.2 s per 10,000-row block to a busy server's seconds.
    sinkWriteSeconds: new Histogram({
      name: 'apigw_stream_sink_write_seconds', help: 'How long the sink\'s writes of a block to ClickHouse took, retries included (every table of the block)',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry],
    }),
    clickHouseRetries: new Counter({ name: 'apigw_stream_sink_clickhouse_retries_total', help: 'ClickHouse writes and reads of the sink that failed and were tried again (a server restarting, say): the ones that still fail count in the failures', labelNames: ['operation'], registers: [registry] }),
    sinkWriteFailures: new Counter({ name: 'apigw_stream_sink_write_failures_total', help: 'ClickHouse writes that failed after their retries (the sink then consumed again from its committed offsets)', registers: [registry] }),
    deadLettered: new Counter({ name: 'apigw_stream_dead_lettered_total', help: 'Messages sent to the dead-letter topic', labelNames: ['reason'], registers: [registry] }),
    sinkIntegrationsHeld: new Gauge({ name: 'apigw_stream_sink_integrations_held', help: 'Integrations whose applied state the sink holds in memory: the live ones of its partitions, and deleted ones until their deletion is written', registers: [registry] }),
    sinkIntegrationsHeldLimit: new Gauge({ name: 'apigw_stream_sink_integrations_held_limit', help: 'The most integrations the sink holds in memory (APIGW_SINK_HELD_INTEGRATIONS)', registers: [registry] }),
    sinkIntegrationsLetGo: new Counter({ name: 'apigw_stream_sink_integrations_let_go_total', help: 'Integrations the sink let go of at its limit (APIGW_SINK_HELD_INTEGRATIONS): their next event reads them back from ClickHouse first', registers: [registry] }),
    sinkLastOffset: new Gauge({ name: 'apigw_stream_sink_last_offset', help: 'Last offset the sink committed, its rows written to ClickHouse', labelNames: ['partition'], registers: [registry] }),
    sinkOffsetsExpired: new Counter({ name: 'apigw_stream_sink_offsets_expired_total', help: 'Offsets of a partition that the topic\'s retention deleted before the sink\'s group read them, found as a sink starts (each sink of the group counts them), starts over after a failed write, or reads on past them (transaction markers among them included): changes missing from history', labelNames: ['partition'], registers: [registry] }),
    sinkLag: new Gauge({ name: 'apigw_stream_sink_lag', help: 'Messages of an owned partition after the last one the sink applied, as of its last fetch of that partition', labelNames: ['partition'], registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Serves `/metrics` (Prometheus text) and `/healthz` (the health report as JSON: 200 when ready, 503 otherwise) on
 * `host`:`port`.
 */
export function serveMetrics(metrics: Metrics, health: Health, address: { host: string; port: number }): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.url === '/healthz') {
      const report = health.report();
      response.writeHead(report.ready ? 200 : 503, { 'Content-Type': 'application/json' }).end(JSON.stringify(report));
      return;
    }
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (body) => response.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body),
      (error: Error) => response.writeHead(500).end(error.message),
    );
  });
  return listenOn(server, address, { port: 'APIGW_METRICS_PORT', host: 'APIGW_METRICS_HOST' }).then(() => server);
}
