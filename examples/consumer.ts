/**
 * A minimal downstream consumer of apigw-stream's topic, using only kafkajs and the Confluent schema registry
 * client — no apigw-stream code. Run it with:
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 SCHEMA_REGISTRY_URL=http://127.0.0.1:8081/apis/ccompat/v7 npx tsx examples/consumer.ts
 *
 * It prints one line per event: the integration, what happened, when and who did it.
 */
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { Kafka, logLevel } from 'kafkajs';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const registry = new SchemaRegistry({ host: process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7' });
const topic = process.env.APIGW_TOPIC ?? 'aws.apigatewayv2.integrations';

const kafka = new Kafka({ clientId: 'example-consumer', brokers, logLevel: logLevel.WARN });
// read_committed (kafkajs's default): the CloudTrail listener writes in transactions.
const consumer = kafka.consumer({ groupId: process.env.GROUP_ID ?? 'example-consumer' });

await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
await consumer.run({
  eachMessage: async ({ partition, message }) => {
    if (!message.key || !message.value) return;
    const key = await registry.decode(message.key);
    const change = await registry.decode(message.value);
    if (change.op === 'SNAPSHOT_COMPLETE') return; // a completion marker, see schemas/asyncapi.yaml
    const who = change.source.principal_arn ?? `${change.source.type.toLowerCase()} ${change.source.snapshot_id ?? ''}`.trim();
    const state = change.after ? `${change.after.integration_type} ${change.after.integration_uri ?? ''}`.trim() : 'deleted';
    console.log(`${new Date(change.event_time).toISOString()} p${partition} ${key.region}/${key.api_id}/${key.integration_id} ${change.op} by ${who}: ${state}`);
  },
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    consumer.disconnect().finally(() => process.exit(0));
  });
}
