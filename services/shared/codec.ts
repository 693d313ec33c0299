import { readFileSync } from 'node:fs';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import { basicAuthHeader, type BasicAuth } from './basic-auth.js';
import { DependencyError, PoisonMessageError, isRetriable } from './errors.js';
import type { IntegrationChange, IntegrationKey, IntegrationState } from './integration-model.js';

const schemaFile = (name: string) => readFileSync(new URL(`../../schemas/${name}`, import.meta.url), 'utf8');

export const KEY_SCHEMA = schemaFile('integration-key.avsc');
export const VALUE_SCHEMA = schemaFile('integration-change.avsc');

/** TopicNameStrategy subjects of a topic. */
export function subjectsOf(topic: string) {
  return { key: `${topic}-key`, value: `${topic}-value` };
}

/** An after-image as decoded, with its Avro bytes under writer schema `schemaId`. */
export interface EncodedImage {
  schemaId: number;
  /**
   * The bytes as a latin1 string, one character per byte. A string is a copy in the JS heap; a Buffer of its own per
   * image was an allocation outside it, each counted against the heap's external memory (a Buffer from the shared
   * pool would keep a whole 8 KB slab alive). 1M benchmark events, eleven interleaved pairs: faster in nine, medians
   * 16.9 s against 17.6 s; peaks 835-901 MiB against 806-898.
   */
  bytes: string;
  after: IntegrationState;
}

/** The last after-image decoded for an integration ARN, if the caller keeps one. */
export type PreviousImage = (arn: string) => EncodedImage | undefined;

export interface DecodedMessage {
  key: IntegrationKey;
  value: IntegrationChange;
}

export interface DecodedChange {
  value: IntegrationChange;
  /** The value's after-image with its bytes (null for a marker or a deletion). */
  image: EncodedImage | null;
}

/**
 * A writer schema's value type in parts, when `after` and `snapshot` are its last two fields and a null snapshot is
 * one 0 byte (branch 0 of its union); otherwise null. The fields before the after-image are read first, so that an
 * after-image equal byte for byte to the previous one of its integration is not decoded again (most events are
 * re-reads of an unchanged configuration).
 */
interface ValueParts {
  head: avro.Type;
  after: avro.Type;
  snapshot: avro.Type;
}

function valueParts(type: avro.Type): ValueParts | null {
  const record = type as avro.types.RecordType;
  const names = record.fields.map((field) => field.name);
  const snapshotBranches = names.at(-1) === 'snapshot' ? (record.field('snapshot').type as avro.types.UnwrappedUnionType).types : undefined;
  if (names.at(-2) !== 'after' || snapshotBranches?.[0]?.typeName !== 'null') return null;
  const schema = type.schema() as { fields: unknown[] };
  return {
    head: avro.Type.forSchema({ ...schema, fields: schema.fields.slice(0, -2) } as avro.Schema),
    after: record.field('after').type,
    snapshot: record.field('snapshot').type,
  };
}

/**
 * Avro in the Confluent wire format through the schema registry. Producers call `register` once; consumers
 * decode by the schema id each message carries.
 */
export function createChangeCodec({ registryUrl, registryAuth, topic, schemas = { key: KEY_SCHEMA, value: VALUE_SCHEMA } }: {
  registryUrl: string;
  registryAuth?: BasicAuth;
  topic: string;
  /** The Avro schemas to register and write with; the files in schemas/ unless a test evolves them. */
  schemas?: { key: string; value: string };
}) {
  const registry = new SchemaRegistry({ host: registryUrl, auth: registryAuth, retry: { retries: 5, initialRetryTimeInSecs: 0.2, maxRetryTimeInSecs: 5 } });
  const subjects = subjectsOf(topic);
  let ids: { key: number; value: number } | undefined;
  // The registry client's own encode validates every value before writing it, and its decode awaits a cache
  // lookup per message; at sink rates that cost a quarter of the time (bench/codec.ts). The schemas still come
  // from the registry by id; only the 5-byte Confluent framing is written here.
  const types = new Map<number, avro.Type>();
  const partsById = new Map<number, ValueParts | null>();
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

  function partsOf(id: number, type: avro.Type): ValueParts | null {
    let parts = partsById.get(id);
    if (parts === undefined) partsById.set(id, (parts = valueParts(type)));
    return parts;
  }

  /** A value and its after-image's bytes; the after-image of `previous` when the bytes are the same. */
  function readValue(buffer: Buffer, id: number, type: avro.Type, previous: PreviousImage): DecodedChange {
    const parts = partsOf(id, type);
    if (!parts) return { value: unframe(buffer, type) as IntegrationChange, image: null };
    const head = parts.head.decode(buffer, 5);
    if (head.offset < 0) throw new Error('truncated buffer');
    const value = head.value as IntegrationChange;
    const afterStart = head.offset;
    // With no snapshot (branch 0 of its union, one byte), the after-image runs to the last byte.
    const afterEnd = buffer.length - 1;
    const known = buffer[afterEnd] === 0 ? previous(value.arn) : undefined;
    if (known && known.schemaId === id && known.bytes.length === afterEnd - afterStart && buffer.toString('latin1', afterStart, afterEnd) === known.bytes) {
      value.after = known.after;
      value.snapshot = null;
      return { value, image: known };
    }
    const after = parts.after.decode(buffer, afterStart);
    const snapshot = after.offset < 0 ? after : parts.snapshot.decode(buffer, after.offset);
    if (snapshot.offset < 0) throw new Error('truncated buffer');
    if (snapshot.offset < buffer.length) throw new Error('trailing data');
    value.after = after.value as IntegrationState | null;
    value.snapshot = snapshot.value as IntegrationChange['snapshot'];
    // A copy: a view would keep the whole fetched batch it came in alive.
    const image = value.after ? { schemaId: id, bytes: buffer.toString('latin1', afterStart, after.offset), after: value.after } : null;
    return { value, image };
  }

  /**
   * Decodes both parts when both schemas are known, synchronously (a batch then decodes without a microtask per
   * message); otherwise fetches them first. Every failure is a PoisonMessageError or (registry down) a DependencyError.
   */
  function decodeFramed<T>(
    key: Buffer | null, value: Buffer | null, read: (key: Buffer, value: Buffer, keyType: avro.Type, valueType: avro.Type, valueId: number) => T,
  ): T | Promise<T> {
    let keyId: number;
    let valueId: number;
    try {
      if (!key || !value) throw new PoisonMessageError('empty', 'message has no key or no value');
      keyId = schemaIdOf(key);
      valueId = schemaIdOf(value);
      const keyType = types.get(keyId);
      const valueType = types.get(valueId);
      if (keyType && valueType) return read(key, value, keyType, valueType, valueId);
    } catch (error) {
      throw classifyDecodeError(error);
    }
    return (async () => {
      try {
        return read(key, value, await typeOf(keyId), await typeOf(valueId), valueId);
      } catch (error) {
        throw classifyDecodeError(error);
      }
    })();
  }

  function schemaIdOf(buffer: Buffer): number {
    if (buffer.length < 5 || buffer[0] !== 0) throw new Error(`not in the Confluent wire format (magic byte ${buffer[0]})`);
    return buffer.readInt32BE(1);
  }

  async function setBackwardCompatibility(subject: string): Promise<void> {
    const response = await fetch(`${registryUrl}/config/${encodeURIComponent(subject)}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json', ...basicAuthHeader(registryAuth) },
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
    /** A key framed as a producer that wrote with key schema `schemaId` framed it: the bytes its partitioner hashed. */
    async frameKey(schemaId: number, key: IntegrationKey): Promise<Buffer> {
      return frame(schemaId, await typeOf(schemaId), key);
    },
    /** The schema id a framed key was written with. */
    keySchemaId: (key: Buffer): number => schemaIdOf(key),
    async encode(key: IntegrationKey, value: IntegrationChange): Promise<{ key: Buffer; value: Buffer }> {
      if (!ids) throw new Error('codec used before register()');
      return { key: frame(ids.key, await typeOf(ids.key), key), value: frame(ids.value, await typeOf(ids.value), value) };
    },
    decode(key: Buffer | null, value: Buffer | null): DecodedMessage | Promise<DecodedMessage> {
      return decodeFramed(key, value, (k, v, keyType, valueType) => ({ key: unframe(k, keyType) as IntegrationKey, value: unframe(v, valueType) as IntegrationChange }));
    },
    /**
     * The value and its after-image with the image's bytes, for a consumer that keeps the last image of each
     * integration (`previous`): an after-image with the same bytes is that one, not decoded again. The key is
     * checked for its framing and schema but not decoded: the value carries every field of it.
     */
    decodeChange(key: Buffer | null, value: Buffer | null, previous: PreviousImage): DecodedChange | Promise<DecodedChange> {
      return decodeFramed(key, value, (_, v, _keyType, valueType, valueId) => readValue(v, valueId, valueType, previous));
    },
  };
}

export type ChangeCodec = ReturnType<typeof createChangeCodec>;

function classifyDecodeError(error: unknown): Error {
  if (error instanceof PoisonMessageError) return error;
  // Retriable: the consumer tries the batch again (with backoff) until the registry answers, and loses nothing. A
  // registry behind a load balancer answers 502 or 503 while it is down, rather than refusing connections.
  if (isUnreachable(error) || isRetriable(error)) {
    return new DependencyError('schema registry', `cannot fetch schema: ${(error as Error).message}`, error, { retriable: true });
  }
  // Refused credentials are the configuration's fault, not the message's: dead-lettering would take every message.
  const status = (error as { status?: unknown } | undefined)?.status;
  if (status === 401 || status === 403) {
    return new DependencyError('SCHEMA_REGISTRY_URL', `the registry refused the credentials (HTTP ${status}) when fetching a schema: ${(error as Error).message}`, error);
  }
  return new PoisonMessageError('undecodable', `cannot decode message: ${(error as Error).message}`, error);
}

function isUnreachable(error: unknown): boolean {
  const text = String((error as Error)?.message ?? error);
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket hang up|fetch failed|Too many retries/i.test(text);
}
