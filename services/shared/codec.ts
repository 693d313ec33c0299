import { readFileSync } from 'node:fs';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type avro from 'avsc';
import { DependencyError, PoisonMessageError } from './errors.js';
import type { IntegrationChange, IntegrationKey } from './integration-model.js';

const schemaFile = (name: string) => readFileSync(new URL(`../../schemas/${name}`, import.meta.url), 'utf8');

export const KEY_SCHEMA = schemaFile('integration-key.avsc');
export const VALUE_SCHEMA = schemaFile('integration-change.avsc');

/** TopicNameStrategy subjects of a topic. */
export function subjectsOf(topic: string) {
  return { key: `${topic}-key`, value: `${topic}-value` };
}

export interface DecodedMessage {
  key: IntegrationKey;
  value: IntegrationChange;
}

/**
 * Avro in the Confluent wire format through the schema registry. Producers call `register` once; consumers
 * decode by the schema id each message carries.
 */
export function createChangeCodec({ registryUrl, topic, schemas = { key: KEY_SCHEMA, value: VALUE_SCHEMA } }: {
  registryUrl: string;
  topic: string;
  /** The Avro schemas to register and write with; the files in schemas/ unless a test evolves them. */
  schemas?: { key: string; value: string };
}) {
  const registry = new SchemaRegistry({ host: registryUrl, retry: { retries: 5, initialRetryTimeInSecs: 0.2, maxRetryTimeInSecs: 5 } });
  const subjects = subjectsOf(topic);
  let ids: { key: number; value: number } | undefined;
  // The registry client's own encode validates every value before writing it, and its decode awaits a cache
  // lookup per message; at sink rates that cost a quarter of the time (bench/codec.ts). The schemas still come
  // from the registry by id; only the 5-byte Confluent framing is written here.
  const types = new Map<number, avro.Type>();
  let scratch = Buffer.alloc(64 * 1024);

  async function typeOf(id: number): Promise<avro.Type> {
    let type = types.get(id);
    if (!type) {
      type = (await registry.getSchema(id)) as unknown as avro.Type;
      types.set(id, type);
    }
    return type;
  }

  function frame(id: number, type: avro.Type, payload: unknown): Buffer {
    for (;;) {
      const end = type.encode(payload, scratch, 5);
      if (end > 0) {
        const out = Buffer.allocUnsafe(end);
        out[0] = 0;
        out.writeInt32BE(id, 1);
        scratch.copy(out, 5, 5, end);
        return out;
      }
      scratch = Buffer.alloc(Math.max(scratch.length * 2, 5 - end));
    }
  }

  function unframe(buffer: Buffer, type: avro.Type): unknown {
    return type.fromBuffer(buffer.subarray(5));
  }

  function schemaIdOf(buffer: Buffer): number {
    if (buffer.length < 5 || buffer[0] !== 0) throw new Error(`not in the Confluent wire format (magic byte ${buffer[0]})`);
    return buffer.readInt32BE(1);
  }

  async function setBackwardCompatibility(subject: string): Promise<void> {
    const response = await fetch(`${registryUrl}/config/${encodeURIComponent(subject)}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ compatibility: 'BACKWARD' }),
    });
    if (!response.ok) throw new DependencyError('schema registry', `setting BACKWARD on ${subject} failed: HTTP ${response.status} ${await response.text()}`);
  }

  async function registerOne(subject: string, schema: string): Promise<number> {
    await setBackwardCompatibility(subject);
    try {
      const { id } = await registry.register({ type: SchemaType.AVRO, schema }, { subject });
      return id;
    } catch (error) {
      const reason = (error as Error).message.replace(/^.*RuleViolationException: /, '').split('\n')[0];
      throw new DependencyError('SCHEMA_REGISTRY_URL', `the registry refused the schema for subject ${subject}: ${reason}`, error);
    }
  }

  return {
    subjects,
    /** Sets BACKWARD compatibility on both subjects and registers the schemas; idempotent. */
    async register(): Promise<{ key: number; value: number }> {
      ids = { key: await registerOne(subjects.key, schemas.key), value: await registerOne(subjects.value, schemas.value) };
      return ids;
    },
    async encode(key: IntegrationKey, value: IntegrationChange): Promise<{ key: Buffer; value: Buffer }> {
      if (!ids) throw new Error('codec used before register()');
      return { key: frame(ids.key, await typeOf(ids.key), key), value: frame(ids.value, await typeOf(ids.value), value) };
    },
    /** Synchronous when both schemas are known (the common case), so a batch decodes without a microtask per message. */
    decode(key: Buffer | null, value: Buffer | null): DecodedMessage | Promise<DecodedMessage> {
      try {
        if (!key || !value) throw new PoisonMessageError('empty', 'message has no key or no value');
        const keyType = types.get(schemaIdOf(key));
        const valueType = types.get(schemaIdOf(value));
        if (keyType && valueType) return { key: unframe(key, keyType) as IntegrationKey, value: unframe(value, valueType) as IntegrationChange };
      } catch (error) {
        throw classifyDecodeError(error);
      }
      return (async () => {
        try {
          const keyType = await typeOf(schemaIdOf(key));
          const valueType = await typeOf(schemaIdOf(value));
          return { key: unframe(key, keyType) as IntegrationKey, value: unframe(value, valueType) as IntegrationChange };
        } catch (error) {
          throw classifyDecodeError(error);
        }
      })();
    },
  };
}

export type ChangeCodec = ReturnType<typeof createChangeCodec>;

function classifyDecodeError(error: unknown): Error {
  if (error instanceof PoisonMessageError) return error;
  if (isUnreachable(error)) return new DependencyError('schema registry', `cannot fetch schema: ${(error as Error).message}`, error);
  return new PoisonMessageError('undecodable', `cannot decode message: ${(error as Error).message}`, error);
}

function isUnreachable(error: unknown): boolean {
  const text = String((error as Error)?.message ?? error);
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket hang up|fetch failed|Too many retries/i.test(text);
}
