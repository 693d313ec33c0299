import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AvroSchemaParser } from '@asyncapi/avro-schema-parser';
import { Parser, fromFile } from '@asyncapi/parser';
import { parse as parseYaml } from 'yaml';
import { KEY_SCHEMA, VALUE_SCHEMA, subjectsOf } from '../../services/shared/codec.js';
import { loadConfig } from '../../services/shared/config.js';
import { dlqTopic } from '../../services/shared/kafka.js';

const DOCUMENT = fileURLToPath(new URL('../../schemas/asyncapi.yaml', import.meta.url));

describe('the AsyncAPI document of the topic', () => {
  it('parses without errors and describes the topic, key and value the code registers', async () => {
    const parser = new Parser();
    parser.registerSchemaParser(AvroSchemaParser());
    const { document, diagnostics } = await fromFile(parser, DOCUMENT).parse();
    assert.deepEqual(diagnostics.filter((d) => d.severity === 0).map((d) => d.message), [], 'no errors');
    assert.ok(document);

    const topic = loadConfig({}).topic;
    assert.deepEqual(document.channels().all().map((channel) => channel.address()), [topic, dlqTopic(topic)]);

    const message = document.allMessages().all().find((m) => m.name() === 'IntegrationChange')!;
    const valueFields = (JSON.parse(VALUE_SCHEMA) as { fields: { name: string }[] }).fields.map((f) => f.name);
    const payload = message.payload()!.json() as { schema: { properties: Record<string, unknown> } };
    assert.deepEqual(Object.keys(payload.schema.properties), valueFields, 'the payload is IntegrationChange, field for field');

    const kafka = message.bindings().get('kafka')!.json() as { key: { schema: unknown }; schemaLookupStrategy: string; schemaIdPayloadEncoding: string };
    assert.deepEqual(kafka.key.schema, JSON.parse(KEY_SCHEMA), 'the key is IntegrationKey');
    assert.equal(kafka.schemaLookupStrategy, 'TopicNameStrategy');
    assert.equal(kafka.schemaIdPayloadEncoding, 'confluent');
    assert.deepEqual(subjectsOf(topic), { key: `${topic}-key`, value: `${topic}-value` }, 'TopicNameStrategy subjects');
  });

  it('references the very .avsc files the codec registers', () => {
    const raw = parseYaml(readFileSync(DOCUMENT, 'utf8')) as { components: { messages: { IntegrationChange: { payload: { schema: { $ref: string } }; bindings: { kafka: { key: { schema: { $ref: string } } } } } } } };
    const message = raw.components.messages.IntegrationChange;
    const read = (ref: string) => readFileSync(new URL(ref, new URL('../../schemas/', import.meta.url)), 'utf8');
    assert.equal(read(message.payload.schema.$ref), VALUE_SCHEMA);
    assert.equal(read(message.bindings.kafka.key.schema.$ref), KEY_SCHEMA);
  });
});
