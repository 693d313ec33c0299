import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createChangeCodec, type DecodedChange, type EncodedImage } from '../../services/shared/codec.js';
import { PoisonMessageError } from '../../services/shared/errors.js';
import { integrationArn, mapIntegration, type IntegrationChange } from '../../services/shared/integration-model.js';
import { registryUrl, uniqueName } from '../support/harness.js';

const ARN = integrationArn('eu-west-3', 'c1', 'i1');

/** A decoded record as plain data (avsc gives records their own classes). */
const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;

function change(overrides: Partial<IntegrationChange> = {}): IntegrationChange {
  return {
    event_id: 'e1', op: 'SNAPSHOT', event_time: 1_000, observed_at: 1_000,
    source: { type: 'SNAPSHOT', snapshot_id: 's1', cloudtrail_event_id: null, cloudtrail_event_name: null, principal_arn: null, source_ip: null, user_agent: null },
    account_id: '123456789012', region: 'eu-west-3', api_id: 'c1', integration_id: 'i1', arn: ARN,
    api: { name: 'orders', protocol_type: 'WEBSOCKET', api_endpoint: 'wss://c1.example.com' },
    after: mapIntegration('eu-west-3', 'c1', {
      IntegrationId: 'i1', IntegrationType: 'AWS', TimeoutInMillis: 29_000,
      RequestParameters: { 'overwrite:header.x-b': '$context.requestId', 'append:header.x-a': 'static' },
      RequestTemplates: { 'application/json': '{"body": $input.json(\'$\'), "quote": "\\"é\\""}' },
      ResponseParameters: { 200: { 'append:header.x-c': 'ok' } },
    }),
    snapshot: null,
    ...overrides,
  };
}

describe('decoding changes for the sink', { timeout: 60_000 }, () => {
  const codec = createChangeCodec({ registryUrl, topic: uniqueName('codec') });
  const encode = async (event: IntegrationChange) => codec.encode(event, event);
  const decode = async (message: { key: Buffer | null; value: Buffer | null }, previous?: EncodedImage): Promise<DecodedChange> =>
    codec.decodeChange(message.key, message.value, (arn) => (arn === ARN ? previous : undefined));

  before(async () => {
    await codec.register();
  });

  it('returns every field, and the after-image with its bytes', async () => {
    const event = change();
    const { value, image } = await decode(await encode(event));
    assert.deepEqual(plain(value), plain(event));
    assert.ok(image);
    assert.equal(image.after, value.after);
    const reencoded = await encode({ ...event, after: image.after });
    assert.ok(reencoded.value.includes(image.bytes, 0, 'latin1'), 'the bytes are the after-image as written');
  });

  it('takes a re-read with the same after-image bytes as the previous image, every other field as read', async () => {
    const first = await decode(await encode(change()));
    const reread = change({ event_id: 'e2', event_time: 2_000, observed_at: 2_500, source: { ...change().source, snapshot_id: 's2' } });
    const { value, image } = await decode(await encode(reread), first.image!);
    assert.equal(image, first.image, 'the previous image');
    assert.equal(value.after, first.image!.after);
    assert.equal(value.event_id, 'e2');
    assert.equal(value.observed_at, 2_500);
    assert.equal(value.source.snapshot_id, 's2');
    assert.equal(value.snapshot, null);
  });

  it('decodes an after-image that differs in any byte', async () => {
    const first = await decode(await encode(change()));
    const updated = change({ op: 'UPDATE' });
    updated.after = { ...updated.after!, request_templates: { 'application/json': '{"body": $input.json(\'$\'), "quote": "\\"è\\""}' } };
    const { value, image } = await decode(await encode(updated), first.image!);
    assert.notEqual(image, first.image);
    assert.deepEqual(value.after!.request_templates, updated.after.request_templates);
    assert.equal(value.after!.timeout_in_millis, 29_000);
  });

  it('gives no image for a deletion or a completion marker, and reads the marker\'s scope', async () => {
    const previous = (await decode(await encode(change()))).image!;
    const deleted = await decode(await encode(change({ op: 'DELETE', after: null })), previous);
    assert.equal(deleted.value.after, null);
    assert.equal(deleted.image, null);
    const marker = change({
      op: 'SNAPSHOT_COMPLETE', after: null, api: null,
      snapshot: { snapshot_id: 's1', started_at: 500, api_ids: ['c1', 'c2'], integration_count: 7 },
    });
    const decoded = await decode(await encode(marker), previous);
    assert.equal(decoded.image, null);
    assert.deepEqual(plain(decoded.value.snapshot), marker.snapshot);
  });

  it('refuses a value cut short or followed by more bytes as a poison message, even when its after-image matches', async () => {
    const message = await encode(change());
    const previous = (await decode(message)).image!;
    for (const value of [message.value.subarray(0, message.value.length - 1), Buffer.concat([message.value, Buffer.from([0])]), Buffer.concat([message.value, Buffer.from([2, 65])])]) {
      await assert.rejects(decode({ key: message.key, value }, previous), (error: unknown) => {
        assert.ok(error instanceof PoisonMessageError);
        assert.equal(error.reason, 'undecodable');
        return true;
      });
    }
    await assert.rejects(decode({ key: null, value: message.value }, previous), (error: unknown) => error instanceof PoisonMessageError && error.reason === 'empty');
  });
});
