import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sleep } from '../../services/shared/retry.js';
import { integrationArn, mapIntegration, type IntegrationChange } from '../../services/shared/integration-model.js';
import { dlqTopic } from '../../services/shared/kafka.js';
import { plainKafka, rows, topicMessages, waitFor } from '../support/harness.js';
import { newerProducerCodec, sinkBehindRegistryProxy } from '../support/registry-proxy.js';

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
  const sink = sinkBehindRegistryProxy(REGION, () => (down ? 'drop' : 'forward'));

  const history = (arn: string) => rows<{ timeout: number }>(sink.pipeline,
    `SELECT JSONExtractInt(after, 'timeout_in_millis') AS timeout FROM ${sink.env.table('aws_apigatewayv2_api_integrations_history')} WHERE arn = {arn:String}`, { arn });

  it('an event of a schema the sink has not fetched yet waits for the registry, then is applied once; nothing is dead-lettered', async () => {
    // A producer of a newer version registered its schema (one more optional field) with the registry directly.
    const newer = newerProducerCodec(sink.env.config.topic);
    await newer.register();
    const event = update('i-outage', 4321);
    const { key, value } = await newer.encode(event, event);

    down = true;
    const producer = plainKafka().producer();
    await producer.connect();
    await producer.send({ topic: sink.env.config.topic, messages: [{ key, value }] });
    await producer.disconnect();
    await sleep(8_000);
    assert.deepEqual(await history(event.arn), [], 'not applied while its schema cannot be fetched');

    down = false;
    await waitFor('the sink to apply the event once the registry is back', async () => (await history(event.arn)).length > 0, 120_000);
    await sink.pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await history(event.arn), [{ timeout: 4321 }], 'one history row');
    assert.equal((await topicMessages(dlqTopic(sink.env.config.topic))).length, 0, 'nothing dead-lettered');
  });
});
