import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import kafkajs, { type Message } from 'kafkajs';
import type { Pipeline } from '../../cli/pipeline.js';
import { dlqTopic, messageSizeLimit, withAdmin } from '../../services/shared/kafka.js';
import { resetEmulator, seedSampleInventory } from '../../stack/sample-inventory.js';
import { tailJson } from '../support/cli.js';
import { createChangeCodec } from '../../services/shared/codec.js';
import { cloudTrailSource, integrationChange } from '../support/changes.js';
import { awsClient, motoEndpoint, plainKafka, produce, registryUrl, rows, testEnvironment, topicMessages, waitFor } from '../support/harness.js';

const REGION = 'ap-southeast-2';
const env = testEnvironment({ region: REGION, partitions: 2 });
const aws = awsClient(REGION);

const produceChanges = (...messages: Message[]) => produce(env.config.topic, messages);

describe('messages the sink cannot decode go to the dead-letter topic and the pipeline goes on', { timeout: 180_000 }, () => {
  let pipeline: Pipeline;
  before(async () => {
    await resetEmulator(motoEndpoint);
    await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'dlq' });
    pipeline = await env.open({ snapshot: true, sink: true });
  });
  after(async () => {
    await pipeline?.close();
    aws.destroy();
    await env.cleanup();
  });

  it('dead-letters garbage and a message with an unknown schema id, with headers saying why, and applies the rest', async () => {
    const unknownSchemaId = Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0, 1, 2, 3]);
    await produceChanges({ key: 'not-avro', value: 'not avro either', partition: 0 }, { key: unknownSchemaId, value: unknownSchemaId, partition: 1 });

    const result = await pipeline.snapshotter!.runOnce();
    await pipeline.sink!.waitForCatchUp();
    const [{ live }] = await rows<{ live: string }>(pipeline, `SELECT count() AS live FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE is_deleted = 0`) as [{ live: string }];
    assert.equal(Number(live), result.regions[0]!.integrations);

    const dead = (await topicMessages(dlqTopic(env.config.topic))).map((message) => message.headers);
    dead.sort((a, b) => a['dlq.partition']!.localeCompare(b['dlq.partition']!));
    assert.deepEqual(dead.map((h) => [h['dlq.reason'], h['dlq.topic'], h['dlq.partition'], h['dlq.offset']]), [
      ['undecodable', env.config.topic, '0', '0'],
      ['undecodable', env.config.topic, '1', '0'],
    ]);
    assert.ok(dead.every((h) => (h['dlq.error'] ?? '').length > 0), 'the error is in the headers');
  });

  it('tail --dead-letters prints each dead-lettered message with why and where it came from', async () => {
    const letters = await tailJson<{ reason: string; error: string; from: { topic: string; partition: number; offset: string }; value_bytes: number }>(
      ['--from-beginning', '--dead-letters'], env.env, 2);
    letters.sort((a, b) => a.from.partition - b.from.partition);
    assert.deepEqual(letters.map((l) => [l.reason, l.from.topic, l.from.partition, l.from.offset, l.value_bytes]), [
      ['undecodable', env.config.topic, 0, '0', 'not avro either'.length],
      ['undecodable', env.config.topic, 1, '0', 8],
    ]);
    assert.ok(letters.every((l) => l.error.length > 0), 'each says what failed');
  });

  it('dead-letters an event whose times the tables cannot hold, and applies what follows it in its partition', async () => {
    const codec = createChangeCodec({ registryUrl, topic: env.config.topic });
    await codec.register();
    const at = (eventTime: number, eventId: string) =>
      integrationChange({ region: REGION, apiId: 'times1', integrationId: 'i-times', source: cloudTrailSource(eventId), eventTime, observedAt: Date.now() });
    // Year 33658; past what a Date holds; then a change of the same integration (same key, same partition).
    const odd = [at(1e15, 'ct-far'), at(9e15, 'ct-beyond')];
    const fine = at(Date.now() - 1000, 'ct-fine');
    await produceChanges(...await Promise.all([...odd, fine].map((change) => codec.encode(change, change))));

    await waitFor('the change after them applied', async () => (await rows(pipeline,
      `SELECT 1 FROM ${env.table('aws_apigatewayv2_api_integrations_history')} WHERE arn = {arn:String}`, { arn: fine.arn })).length === 1);
    await pipeline.sink!.waitForCatchUp();
    const letters = (await topicMessages(dlqTopic(env.config.topic))).filter((m) => m.headers['dlq.reason'] === 'invalid');
    const ids = await Promise.all(letters.map(async (m) => (await codec.decode(m.key, m.value)).value.event_id));
    assert.deepEqual(ids.sort(), odd.map((change) => change.event_id).sort());
    assert.ok(letters.every((m) => /event_time .* is outside/.test(m.headers['dlq.error']!)), 'saying which time');
  });

  it('dead-letters a message as large as the topic takes, whole: the dead-letter topic has room for the headers', async () => {
    const dlq = dlqTopic(env.config.topic);
    const [topicLimit, dlqLimit] = await withAdmin(plainKafka(), (admin) => Promise.all([env.config.topic, dlq].map((topic) => messageSizeLimit(admin, topic))));
    assert.ok(topicLimit !== undefined && dlqLimit === topicLimit + 64 * 1024, `the dead-letter topic takes ${dlqLimit} bytes, its topic ${topicLimit}`);
    // As large as a send to the topic goes (its record batch, with this key, just under the limit).
    const value = Buffer.alloc(topicLimit - 200, 'x');
    await produceChanges({ key: 'largest', value, partition: 0 });
    const letter = await waitFor('the large message dead-lettered', async () => (await topicMessages(dlq)).find((m) => m.key.toString() === 'largest'));
    assert.ok(letter.value.equals(value), 'its bytes whole');
    await pipeline.sink!.waitForCatchUp();
  });

  it('dead-letters a message too large for a dead-letter topic without that room without its value, and goes on', async () => {
    const dlq = dlqTopic(env.config.topic);
    // As a dead-letter topic made before it had room, or with a smaller limit than its topic's.
    await withAdmin(plainKafka(), (admin) => admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: dlq, configEntries: [{ name: 'max.message.bytes', value: '100000' }] }],
    }));
    await produceChanges({ key: 'too-large', value: Buffer.alloc(200_000, 'y'), partition: 1 }, { key: 'after-it', value: 'small and not avro', partition: 1 });
    await pipeline.sink!.waitForCatchUp();

    const letters = await topicMessages(dlq);
    const tooLarge = letters.find((m) => m.key.toString() === 'too-large');
    assert.ok(tooLarge, 'dead-lettered, not dropped');
    assert.equal(tooLarge.value, null);
    assert.equal(tooLarge.headers['dlq.value-omitted'], '200000');
    assert.deepEqual([tooLarge.headers['dlq.topic'], tooLarge.headers['dlq.reason']], [env.config.topic, 'undecodable'], 'saying where its value stays');
    assert.ok(letters.some((m) => m.key.toString() === 'after-it'), 'the sink went on to the next message');

    const shown = await tailJson<{ from: { offset: string }; value_bytes: number; value_omitted_bytes: number | null }>(
      ['--from-beginning', '--dead-letters'], env.env, letters.length);
    assert.deepEqual(shown.filter((l) => l.value_omitted_bytes !== null).map((l) => [l.from.offset, l.value_bytes, l.value_omitted_bytes]),
      [[tooLarge.headers['dlq.offset'], 0, 200_000]]);
  });

  it('makes its dead-letter topic again when it is deleted under the running sink, and dead-letters into it', async () => {
    const dlq = dlqTopic(env.config.topic);
    await withAdmin(plainKafka(), (admin) => admin.deleteTopics({ topics: [dlq] }));
    await produceChanges({ key: 'after-deletion', value: 'still not avro', partition: 0 });
    // The send to the missing topic waits until the sink's topic check (every 10 s) makes it again.
    await waitFor('the poison message in the dead-letter topic made again', async () =>
      (await withAdmin(plainKafka(), (admin) => admin.listTopics())).includes(dlq) && (await topicMessages(dlq)).length === 1, 60_000);
    await pipeline.sink!.waitForCatchUp();
    const [message] = await topicMessages(dlq);
    assert.equal(message!.key.toString(), 'after-deletion');
  });
});
