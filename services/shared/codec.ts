import { readFileSync } from 'node:fs';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
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
      return { key: await registry.encode(ids.key, key), value: await registry.encode(ids.value, value) };
    },
    async decode(key: Buffer | null, value: Buffer | null): Promise<DecodedMessage> {
      if (!key || !value) throw new PoisonMessageError('empty', 'message has no key or no value');
      try {
        return { key: (await registry.decode(key)) as IntegrationKey, value: (await registry.decode(value)) as IntegrationChange };
      } catch (error) {
        if (isUnreachable(error)) throw new DependencyError('schema registry', `cannot fetch schema: ${(error as Error).message}`, error);
        throw new PoisonMessageError('undecodable', `cannot decode message: ${(error as Error).message}`, error);
      }
    },
  };
}

export type ChangeCodec = ReturnType<typeof createChangeCodec>;

function isUnreachable(error: unknown): boolean {
  const text = String((error as Error)?.message ?? error);
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket hang up|fetch failed|Too many retries/i.test(text);
}
