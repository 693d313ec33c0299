import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type { Pipeline } from '../../cli/pipeline.js';
import { KEY_SCHEMA, VALUE_SCHEMA, createChangeCodec } from '../../services/shared/codec.js';
import { DependencyError } from '../../services/shared/errors.js';
import { integrationArn, mapIntegration, type IntegrationChange } from '../../services/shared/integration-model.js';
import { plainKafka, registryUrl, rows, testEnvironment, waitFor } from '../support/harness.js';
import { evolvedValueSchema } from '../support/registry-proxy.js';

const env = testEnvironment({ region: 'sa-east-1', partitions: 2 });

function change(integrationId: string): IntegrationChange & { change_reason: string } {
  const arn = integrationArn('sa-east-1', 'evo1', integrationId);
  return {
    event_id: `evo-${integrationId}`, op: 'UPDATE', event_time: Date.now(), observed_at: Date.now(),
    source: { type: 'CLOUDTRAIL', snapshot_id: null, cloudtrail_event_id: `ct-${integrationId}`, cloudtrail_event_name: 'UpdateIntegration', principal_arn: 'arn:aws:iam::123456789012:user/evo', source_ip: null, user_agent: null },
    account_id: '123456789012', region: 'sa-east-1', api_id: 'evo1', integration_id: integrationId, arn, api: null,
    after: mapIntegration('sa-east-1', 'evo1', { IntegrationId: integrationId, IntegrationType: 'MOCK', TimeoutInMillis: 1234 }),
    snapshot: null,
    change_reason: 'ticket OPS-42',
  };
}

describe('schema evolution is safe', { timeout: 120_000 }, () => {
  let pipeline: Pipeline;
  before(async () => {
    pipeline = await env.open({ sink: true });
  });
  after(async () => {
    await pipeline?.close();
    await env.cleanup();
  });

  it('an added optional field: old readers still decode new events, and the sink still applies them', async () => {
    const v2 = createChangeCodec({
      registryUrl, topic: env.config.topic,
      schemas: { key: KEY_SCHEMA, value: evolvedValueSchema({ name: 'change_reason', type: ['null', 'string'], default: null, doc: 'why' }) },
    });
    const ids = await v2.register();
    const event = change('i-evolved');
    const { key, value } = await v2.encode(event, event);
    assert.equal(value.readUInt32BE(1), ids.value, 'written with the new schema id');
    const producer = plainKafka().producer();
    await producer.connect();
    await producer.send({ topic: env.config.topic, messages: [{ key, value }] });
    await producer.disconnect();

    // A consumer that holds the old schema reads through it.
    const registry = new SchemaRegistry({ host: registryUrl });
    const old = await registry.decode(value, { [SchemaType.AVRO]: { readerSchema: JSON.parse(VALUE_SCHEMA) } });
    assert.equal(old.change_reason, undefined);
    assert.equal(old.integration_id, 'i-evolved');
    assert.equal(old.after.timeout_in_millis, 1234);

    await pipeline.sink!.waitForCatchUp();
    const [row] = await waitFor('the sink to apply the evolved event', () => rows<{ timeout_in_millis: number }>(pipeline,
      `SELECT timeout_in_millis FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE arn = {arn:String}`, { arn: event.arn }).then((r) => r.length > 0 && r));
    assert.equal(row!.timeout_in_millis, 1234);
  });

  it('an incompatible change is refused by the registry, and the producer says so in one line', async () => {
    const v3 = createChangeCodec({
      registryUrl, topic: env.config.topic,
      schemas: { key: KEY_SCHEMA, value: evolvedValueSchema({ name: 'tenant', type: 'string' }) },
    });
    await assert.rejects(v3.register(), (error: unknown) => {
      assert.ok(error instanceof DependencyError);
      assert.match(error.message, new RegExp(`refused the schema for subject ${env.config.topic.replaceAll('.', '\\.')}-value: Incompatible`));
      assert.doesNotMatch(error.message, /\n/);
      return true;
    });
  });
});
