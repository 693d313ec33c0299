import { ApiGatewayV2Client } from '@aws-sdk/client-apigatewayv2';
import { createDriftQueries } from '../services/query/drift-queries.js';
import { queryRows, type ClickHouseClient } from '../services/shared/clickhouse.js';
import { loadConfig, stackPorts } from '../services/shared/config.js';
import { createKafka } from '../services/shared/kafka.js';
import type { Logger } from '../services/shared/logger.js';
import { createMetrics } from '../services/shared/metrics.js';
import { stackUp } from '../stack/index.js';
import { motoPart } from '../stack/parts.js';
import { waitUntil } from '../stack/processes.js';
import { resetEmulator, seedSampleInventory } from '../stack/sample-inventory.js';
import { startCloudTrailServer } from '../test/support/cloudtrail-server.js';
import { PRINCIPALS, createRecordingClient } from '../test/support/recorded-changes.js';
import { printTable } from './output.js';
import { openPipeline } from './pipeline.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

/**
 * The whole pipeline end to end on the embedded defaults: local stack, seeded emulator, snapshot through Kafka
 * into ClickHouse, a round of changes made "as" named principals and picked up from CloudTrail by the listener,
 * a second snapshot that adds nothing, and the history of who changed what.
 */
export async function runDemo(logger: Logger): Promise<void> {
  say('== 1. local stack (Kafka, schema registry, AWS emulator)');
  await stackUp((line) => say(`   ${line}`));
  const motoEndpoint = motoPart(stackPorts().moto).endpoint;
  // moto has no CloudTrail LookupEvents: the project's test server plays CloudTrail, fed by the changes below.
  const trail = await startCloudTrailServer();
  say(`   cloudtrail: test server at ${trail.endpoint}`);
  const runId = Date.now().toString(36);
  const env = {
    ...process.env,
    AWS_ENDPOINT_URL: motoEndpoint,
    AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint,
    APIGW_LISTENER_POLL_SECONDS: '1',
    APIGW_LISTENER_LOOKBACK_HOURS: '1',
    AWS_REGIONS: 'us-east-1',
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'demo',
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'demo',
    APIGW_TOPIC: 'apigw-demo.integrations',
    APIGW_SINK_GROUP_ID: `apigw-demo-sink-${runId}`,
    CLICKHOUSE_DATABASE: process.env.CLICKHOUSE_DATABASE ?? 'apigw_demo',
  };
  Object.assign(process.env, env);
  const config = loadConfig(env);

  say(`\n== 2. sample inventory in the emulator at ${motoEndpoint}`);
  await resetEmulator(motoEndpoint);
  const aws = new ApiGatewayV2Client({ region: 'us-east-1', endpoint: motoEndpoint });
  const apis = await seedSampleInventory(aws, { httpApis: 6, websocketApis: 4, prefix: 'demo' });
  say(`   ${apis.length} APIs, ${apis.reduce((n, a) => n + a.integrationIds.length, 0)} integrations`);

  // A fresh topic and database per demo, so a second run shows the same story.
  const admin = createKafka({ brokers: config.kafkaBrokers, security: config.kafkaSecurity, clientId: 'apigw-demo', logger }).admin();
  await admin.connect();
  if ((await admin.listTopics()).includes(config.topic)) await admin.deleteTopics({ topics: [config.topic, `${config.topic}.dlq`] });
  await admin.disconnect();

  const pipeline = await openPipeline({ config, logger, metrics: createMetrics(), snapshot: true, listen: true, sink: true, interactive: false, freshDatabase: true });
  const db = config.clickhouseDatabase;
  const stopListener = new AbortController();
  let listening: Promise<void> | undefined;
  try {
    say(`\n== 3. snapshot -> Kafka topic ${config.topic} -> sink -> ClickHouse (${config.clickhouse.kind === 'chdb' ? `embedded chDB at ${config.clickhouse.path}` : config.clickhouse.url})`);
    await pipeline.snapshotter!.runOnce();
    await pipeline.sink!.waitForCatchUp();
    const current = await queryRows<Record<string, unknown>>(pipeline.clickhouse!,
      `SELECT i.aws_api_id, a.name AS api_name, i.integration_id, i.integration_type, i.integration_subtype, i.connection_type,
              i.payload_format_version, i.timeout_in_millis, i.description, i.integration_uri
         FROM ${db}.aws_apigatewayv2_api_integrations_live AS i
         LEFT JOIN (SELECT * FROM ${db}.aws_apigatewayv2_apis FINAL) AS a ON a.api_id = i.api_id
        ORDER BY api_name, integration_id`);
    say(`   current state: ${current.length} integrations in ${db}.aws_apigatewayv2_api_integrations`);
    printTable(current, ['api_name', 'integration_id', 'integration_type', 'integration_subtype', 'connection_type', 'payload_format_version', 'timeout_in_millis', 'description', 'integration_uri'], 26);

    say('\n== 4. CloudTrail listener on; changes in the emulator, each recorded in CloudTrail as its principal');
    listening = pipeline.listener!.run(stopListener.signal);
    const changes = createRecordingClient({ aws, trail, region: 'us-east-1' });
    const first = apis[0]!;
    const updated = first.integrationIds[0]!;
    const events = [await changes.updateIntegration(PRINCIPALS.alice, { ApiId: first.apiId, IntegrationId: updated, TimeoutInMillis: 2500, Description: 'tightened timeout' })];
    say(`   alice updated integration ${updated} of ${first.name} (timeout 2500 ms, new description)`);
    const withMany = apis.find((api) => api.integrationIds.length > 1 && api !== first)!;
    events.push(await changes.deleteIntegration(PRINCIPALS.bob, withMany.apiId, withMany.integrationIds[1]!));
    say(`   bob deleted integration ${withMany.integrationIds[1]} of ${withMany.name}`);
    const doomed = apis[apis.length - 1]!;
    events.push(await changes.deleteApi(PRINCIPALS.ci, doomed.apiId));
    say(`   ci deleted API ${doomed.name} with its ${doomed.integrationIds.length} integration(s)`);
    const added = await changes.createIntegration(PRINCIPALS.alice, {
      ApiId: first.apiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', IntegrationUri: 'https://status.example.com/health', PayloadFormatVersion: '1.0',
    });
    events.push(added.eventId);
    say(`   alice added integration ${added.integrationId} to ${first.name}`);
    const healthCheck = { ApiId: first.apiId, IntegrationId: added.integrationId };
    events.push(await changes.updateIntegration(PRINCIPALS.bob, { ...healthCheck, IntegrationUri: 'https://status.example.net/health' }));
    events.push(await changes.updateIntegration(PRINCIPALS.alice, { ...healthCheck, IntegrationUri: 'https://status.example.com/health' }));
    say('   bob pointed it at status.example.net, and alice put it back within the second: each change keeps its own row');

    say('\n== 5. the history of who changed what (the listener applied each change within a poll)');
    await waitForEvents(pipeline.clickhouse!, db, events);
    const historyRows = async () => Number((await queryRows<{ n: string }>(pipeline.clickhouse!, `SELECT count() AS n FROM ${db}.aws_apigatewayv2_api_integrations_history`))[0]!.n);
    const rowsBefore = await historyRows();
    await pipeline.snapshotter!.runOnce();
    await pipeline.sink!.waitForCatchUp();
    const addedBySnapshot = (await historyRows()) - rowsBefore;
    // What `query changes` answers, oldest first, the principal shortened to its role and session.
    const changed = await createDriftQueries({ client: pipeline.clickhouse!, database: db }).changes(0, Date.now(), {}, 1000);
    const history = changed.filter((change) => change.principal_arn !== null).reverse().map((change) => ({
      ...change, time: change.event_time.slice(11, 19), event: change.cloudtrail_event_name, principal: change.principal_arn!.replace(/^.*:/, ''),
      changed_fields: change.changed_fields.join(','),
    }));
    printTable(history, ['time', 'operation', 'aws_api_id', 'integration_id', 'event', 'principal', 'source_ip', 'changed_fields'], 60);
    say(`   a second snapshot ran after them and added ${addedBySnapshot} history row(s): the listener had already seen every change`);
    const [{ live }] = await queryRows<{ live: string }>(pipeline.clickhouse!, `SELECT count() AS live FROM ${db}.aws_apigatewayv2_api_integrations_live`) as [{ live: string }];
    say(`   ${live} live integrations now; every version is in ${db}.aws_apigatewayv2_api_integrations_history`);
  } finally {
    stopListener.abort();
    await listening;
    await pipeline.close();
    await trail.close();
    aws.destroy();
  }
  say(`\nDone. Ask the tables yourself: \`CLICKHOUSE_DATABASE=${config.clickhouseDatabase} npx apigw-stream query changes\` (or who, current, history, as-of, diff: \`npx apigw-stream query --help\`).`);
  say('The stack is still running for you to explore: `npx apigw-stream stack status`; `npx apigw-stream stack down` stops it.');
}

/** Waits until every CloudTrail event has its history row(s). */
async function waitForEvents(client: ClickHouseClient, db: string, eventIds: string[]): Promise<void> {
  await waitUntil(`the listener to apply ${eventIds.length} CloudTrail events`, async () => {
    const [{ seen }] = await queryRows<{ seen: string }>(client,
      `SELECT uniqExact(cloudtrail_event_id) AS seen FROM ${db}.aws_apigatewayv2_api_integrations_history_attributed WHERE cloudtrail_event_id IN {ids:Array(String)}`, { ids: eventIds }) as [{ seen: string }];
    return Number(seen) === eventIds.length;
  }, { timeoutMs: 60_000 });
}
