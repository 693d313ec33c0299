import type { IncomingMessage } from 'node:http';
import { after, before } from 'node:test';
import type { Pipeline } from '../../cli/pipeline.js';
import { KEY_SCHEMA, VALUE_SCHEMA, createChangeCodec } from '../../services/shared/codec.js';
import { startFaultProxy, type Fault } from './fault-proxy.js';
import { registryUrl, testEnvironment } from './harness.js';

/** The value schema with one more field, as a newer producer writes it. */
export function evolvedValueSchema(field: Record<string, unknown>): string {
  const schema = JSON.parse(VALUE_SCHEMA) as { fields: unknown[] };
  return JSON.stringify({ ...schema, fields: [...schema.fields, field] });
}

/** The codec of a newer producer, whose events carry one more optional field (`change_reason`); it registers with the registry itself. */
export const newerProducerCodec = (topic: string, field = 'change_reason') => createChangeCodec({
  registryUrl, topic, schemas: { key: KEY_SCHEMA, value: evolvedValueSchema({ name: field, type: ['null', 'string'], default: null }) },
});

/**
 * Inside a describe: a sink of its own whose schema registry is reached through a proxy, which `fault` can make
 * fail per request; made before the tests and closed after them.
 */
export function sinkBehindRegistryProxy(region: string, fault: (request: IncomingMessage) => Fault, { partitions = 2 } = {}) {
  const world = {} as { env: ReturnType<typeof testEnvironment>; pipeline: Pipeline; proxy: Awaited<ReturnType<typeof startFaultProxy>> };
  before(async () => {
    world.proxy = await startFaultProxy(registryUrl, fault);
    world.env = testEnvironment({ region, partitions, extra: { SCHEMA_REGISTRY_URL: world.proxy.url } });
    world.pipeline = await world.env.open({ sink: true });
  });
  after(async () => {
    await world.pipeline?.close();
    await world.proxy?.close();
    await world.env?.cleanup();
  });
  return world;
}
