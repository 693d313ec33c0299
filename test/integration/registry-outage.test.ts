import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Pipeline } from '../../cli/pipeline.js';
import { sleep } from '../../services/shared/retry.js';
import { KEY_SCHEMA, VALUE_SCHEMA, createChangeCodec } from '../../services/shared/codec.js';
import { integrationArn, mapIntegration, type IntegrationChange } from '../../services/shared/integration-model.js';
import { dlqTopic } from '../../services/shared/kafka.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { plainKafka, registryUrl, rows, testEnvironment, topicMessages, waitFor } from '../support/harness.js';

const REGION = 'me-south-1';

function update(integrationId: string, timeout: number): IntegrationChange & { change_reason: string } {
  return {
    event_id: `outage-${integrationId}-${timeout}`, op: 'UPDATE', event_time: Date.now(), observed_at: Date.now(),
    source: { type: 'CLOUDTRAIL', snapshot_id: null, cloudtrail_event_id: `ct-${integrationId}-${timeout}`, cloudtrail_event_name: 'UpdateIntegration', principal_arn: 'arn:aws:iam::123456789012:user/ops', source_ip: null, user_agent: null },
    account_id: '123456789012', region: REGION, api_id: 'out1', integration_id: integrationId, arn: integrationArn(REGION, 'out1', integrationId), api: null,
    after: mapIntegration(REGION, 'out1', { IntegrationId: integrationId, IntegrationType: 'MOCK', TimeoutInMillis: timeout }),
    snapshot: null,
    change_reason: 'ticket OPS-7',
  };
}

describe('the schema registry goes away while the sink runs', { timeout: 240_000 }, () => {
  // The schema registry behind a proxy that can go away: while down, every connection to it is dropped.
  let down = false;
  let proxy: Awaited<ReturnType<typeof startFaultProxy>>;
  let env: ReturnType<typeof testEnvironment>;
  let pipeline: Pipeline;
  before(async () => {
    proxy = await startFaultProxy(registryUrl, () => (down ? 'drop' : 'forward'));
    env = testEnvironment({ region: REGION, partitions: 2, extra: { SCHEMA_REGISTRY_URL: proxy.url } });
    pipeline = await env.open({ sink: true });
  });
  after(async () => {
    await pipeline?.close();
    await proxy?.close();
    await env?.cleanup();
  });

  const history = (arn: string) => rows<{ timeout: number }>(pipeline,
    `SELECT JSONExtractInt(after, 'timeout_in_millis') AS timeout FROM ${env.table('aws_apigatewayv2_api_integrations_history')} WHERE arn = {arn:String}`, { arn });

  it('an event of a schema the sink has not fetched yet waits for the registry, then is applied once; nothing is dead-lettered', async () => {
    // A producer of a newer version registered its schema (one more optional field) with the registry directly.
    const schema = JSON.parse(VALUE_SCHEMA) as { fields: unknown[] };
    const newer = createChangeCodec({
      registryUrl, topic: env.config.topic,
      schemas: { key: KEY_SCHEMA, value: JSON.stringify({ ...schema, fields: [...schema.fields, { name: 'change_reason', type: ['null', 'string'], default: null }] }) },
    });
    await newer.register();
    const event = update('i-outage', 4321);
    const { key, value } = await newer.encode(event, event);

    down = true;
    const producer = plainKafka().producer();
    await producer.connect();
    await producer.send({ topic: env.config.topic, messages: [{ key, value }] });
    await producer.disconnect();
    await sleep(8_000);
    assert.deepEqual(await history(event.arn), [], 'not applied while its schema cannot be fetched');

    down = false;
    await waitFor('the sink to apply the event once the registry is back', async () => (await history(event.arn)).length > 0, 120_000);
    await pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await history(event.arn), [{ timeout: 4321 }], 'one history row');
    assert.equal((await topicMessages(dlqTopic(env.config.topic))).length, 0, 'nothing dead-lettered');
  });
});
