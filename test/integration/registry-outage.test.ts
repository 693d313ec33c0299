import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Message } from 'kafkajs';
import { sleep } from '../../services/shared/retry.js';
import { createChangeCodec } from '../../services/shared/codec.js';
import { apiArn, integrationArn, type ChangeSource, type IntegrationChange } from '../../services/shared/integration-model.js';
import { dlqTopic } from '../../services/shared/kafka.js';
import type { Fault } from '../support/fault-proxy.js';
import { cloudTrailSource, integrationChange, snapshotSource } from '../support/changes.js';
import { plainKafka, produce, registryUrl, rows, topicMessages, waitFor } from '../support/harness.js';
import { newerProducerCodec, sinkBehindRegistryProxy } from '../support/registry-proxy.js';

const REGION = 'me-south-1';

function update(integrationId: string, timeout: number): IntegrationChange & { change_reason: string } {
  const change = integrationChange({ region: REGION, apiId: 'out1', integrationId, source: cloudTrailSource(`ct-${integrationId}-${timeout}`), eventTime: Date.now(), timeout });
  return { ...change, change_reason: 'ticket OPS-7' };
}

/** A change of integration `id` of API `out2`, observed at `at`, from `source`. */
const observed = (id: string, at: number, source: ChangeSource) => integrationChange({ region: REGION, apiId: 'out2', integrationId: id, source, eventTime: at });

describe('the schema registry goes away while the sink runs', { timeout: 240_000 }, () => {
  // The schema registry behind a proxy that can go away: every request to it meets `outage`. One partition: the
  // marker test below needs every event in one batch, and keys stay where the partitioner puts them.
  let outage: Fault = 'forward';
  const sink = sinkBehindRegistryProxy(REGION, () => outage, { partitions: 1 });
  const deadLetters = async () => (await topicMessages(dlqTopic(sink.env.config.topic))).length;
  /** A codec whose value schema has one more field, registered with the registry directly: its id is new to the sink. */
  const unfetchedSchema = async (field: string) => {
    const codec = newerProducerCodec(sink.env.config.topic, field);
    await codec.register();
    return codec;
  };
  const produceChanges = (messages: Message[]) => produce(sink.env.config.topic, messages);

  const history = (arn: string) => rows<{ timeout: number }>(sink.pipeline,
    `SELECT JSONExtractInt(after, 'timeout_in_millis') AS timeout FROM ${sink.env.table('aws_apigatewayv2_api_integrations_history')} WHERE arn = {arn:String}`, { arn });

  /** An event of a schema new to the sink, sent while the registry meets `fault`: not applied until it answers, then once. */
  async function heldBackUntilTheRegistryAnswers(field: string, fault: Fault, integrationId: string, timeout: number) {
    // A producer of a newer version registered its schema (one more optional field) with the registry directly.
    const codec = await unfetchedSchema(field);
    const event = update(integrationId, timeout);
    outage = fault;
    await produceChanges([await codec.encode(event, event)]);
    await sleep(8_000);
    assert.deepEqual(await history(event.arn), [], 'not applied while its schema cannot be fetched');

    outage = 'forward';
    await waitFor('the sink to apply the event once the registry answers', async () => (await history(event.arn)).length > 0, 120_000);
    await sink.pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await history(event.arn), [{ timeout }], 'one history row');
    assert.equal(await deadLetters(), 0, 'nothing dead-lettered');
  }

  it('an event of a schema the sink has not fetched yet waits for the registry, then is applied once; nothing is dead-lettered', async () => {
    await heldBackUntilTheRegistryAnswers('change_reason', 'drop', 'i-outage', 4321);
  });

  it('a registry that answers 503 (down behind its load balancer) holds the event back the same way; nothing is dead-lettered', async () => {
    const unavailable: Fault = { status: 503, headers: { 'Content-Type': 'text/html' }, body: '<html><body>503 Service Unavailable</body></html>' };
    await heldBackUntilTheRegistryAnswers('approver', unavailable, 'i-unavailable', 5030);
  });

  it('a batch applied again after its marker (a later event\'s schema could not be fetched) deletes nothing its snapshot saw', async () => {
    const topic = sink.env.config.topic;
    const codec = createChangeCodec({ registryUrl, topic });
    await codec.register();
    const producer = plainKafka().producer();
    await producer.connect();
    // Everything in the one partition, where the marker below deletes what its snapshot did not see.
    const encoded = async (change: IntegrationChange, via = codec) => via.encode(change, change);
    const send = async (changes: IntegrationChange[]) => producer.send({ topic, messages: await Promise.all(changes.map((change) => encoded(change))) });
    const t0 = Date.now();
    const held = Array.from({ length: 100 }, (_, i) => `held${i}`);
    await send([...held, 'gone'].map((id) => observed(id, t0 - 60_000, cloudTrailSource(`ct-${id}`))));
    await sink.pipeline.sink!.waitForCatchUp();

    // A snapshot re-reads the 100 and not `gone`. Its first half is applied and committed in a batch of its own.
    const read = snapshotSource(`snap-${t0}`);
    const reread = (ids: string[]) => ids.map((id) => observed(id, t0 - 20_000, read));
    await send(reread(held.slice(0, 50)));
    await sink.pipeline.sink!.waitForCatchUp();

    // The second half, the marker and new integrations fill the batch's first chunk (200 messages); its second chunk
    // holds an event of a newer schema, which the sink cannot fetch while the registry is away. kafkajs applies the
    // batch again once it can.
    const marker: IntegrationChange = {
      event_id: `snap-${t0}-complete`, op: 'SNAPSHOT_COMPLETE', event_time: t0 - 10_000, observed_at: t0 - 10_000, source: read,
      account_id: '123456789012', region: REGION, api_id: '', integration_id: '', arn: apiArn(REGION, '*'), api: null, after: null,
      snapshot: { snapshot_id: `snap-${t0}`, started_at: t0 - 30_000, api_ids: ['out2'], integration_count: 100 },
    };
    const added = Array.from({ length: 149 }, (_, i) => observed(`new${i}`, Date.now(), cloudTrailSource(`ct-new${i}`)));
    const newest = await unfetchedSchema('ticket');
    outage = 'drop';
    await producer.send({
      topic,
      messages: [
        ...await Promise.all([...reread(held.slice(50)), marker, ...added].map((change) => encoded(change))),
        await encoded(observed('late', Date.now(), cloudTrailSource('ct-late')), newest),
      ],
    });
    await producer.disconnect();
    await sleep(15_000);
    outage = 'forward';
    await sink.pipeline.sink!.waitForCatchUp();

    const live = new Set((await rows<{ arn: string }>(sink.pipeline,
      `SELECT arn FROM ${sink.env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE aws_api_id = 'out2'`)).map((row) => row.arn));
    assert.deepEqual(held.filter((id) => !live.has(integrationArn(REGION, 'out2', id))), [], 'every integration the snapshot saw is live');
    assert.equal(live.has(integrationArn(REGION, 'out2', 'gone')), false, 'the one it did not see is deleted');
    assert.equal(live.size, 100 + 149 + 1, 'with the new ones and the late one');
  });

  // Last: the sink stops.
  it('a registry that refuses the credentials stops the sink with one line naming it; nothing is dead-lettered or committed', async () => {
    const codec = await unfetchedSchema('team');
    const event = update('i-denied', 4010);
    outage = { status: 401, headers: { 'Content-Type': 'application/json' }, body: '{"error_code":401,"message":"Unauthorized"}' };
    await produceChanges([await codec.encode(event, event)]);
    await assert.rejects(sink.pipeline.sink!.failed, /SCHEMA_REGISTRY_URL: the registry refused the credentials \(HTTP 401\)/);
    assert.equal(await deadLetters(), 0, 'nothing dead-lettered');
    assert.equal(await sink.pipeline.sink!.caughtUp(), false, 'its offset is not committed: a sink started with good credentials applies it');
    assert.deepEqual(await history(event.arn), []);
  });
});
