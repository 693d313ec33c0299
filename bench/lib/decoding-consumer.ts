/**
 * The sink benchmarks' reading baseline: a bare kafkajs consumer that only decodes every key and value with avsc
 * (schemas fetched from the registry once per id), the most a JS consumer reads.
 */
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type avro from 'avsc';
import { Kafka, logLevel } from 'kafkajs';
import { stackPorts } from '../../services/shared/config.js';
import { kafkaPart } from '../../stack/parts.js';
import { readPid } from '../../stack/processes.js';
import { cpuSeconds, ownCpuSeconds } from './environment.js';
import { PARTITIONS, type BenchStack } from './feed.js';

/** The local stack's broker, whose CPU the sink and the decoding baseline share the machine's cores with. */
export function brokerPid(): number {
  const { pidFile } = kafkaPart(stackPorts());
  const pid = readPid(pidFile);
  if (!pid) throw new Error(`no Kafka broker pid in ${pidFile}: start the stack with \`apigw-stream stack up\``);
  return pid;
}

export interface DecodeFigures {
  ms: number;
  cpuSeconds: number;
  brokerCpuSeconds: number;
}

/**
 * Connects and subscribes from the topic's start; `run` decodes events until `events` are decoded and returns its
 * time, its CPU seconds (this process's) and the broker's. `group` names its consumer group.
 */
export async function decodingConsumer(stack: BenchStack, topic: string, events: number, group: string): Promise<{ run: () => Promise<DecodeFigures> }> {
  const kafka = new Kafka({ brokers: stack.brokers, logLevel: logLevel.WARN });
  const registry = new SchemaRegistry({ host: stack.registryUrl });
  const types = new Map<number, avro.Type>();
  const decode = async (buffer: Buffer) => {
    const id = buffer.readInt32BE(1);
    let type = types.get(id);
    if (!type) types.set(id, (type = (await registry.getSchema(id)) as unknown as avro.Type));
    return type.fromBuffer(buffer.subarray(5));
  };
  const consumer = kafka.consumer({ groupId: `${topic}.${group}`, maxBytesPerPartition: 16 * 1024 * 1024, maxBytes: 64 * 1024 * 1024 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  async function run(): Promise<DecodeFigures> {
    const started = performance.now();
    const cpuBefore = ownCpuSeconds();
    const brokerBefore = cpuSeconds(brokerPid());
    let decoded = 0;
    await new Promise<void>((resolve, reject) => {
      consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: PARTITIONS,
        eachBatch: async ({ batch }) => {
          for (const message of batch.messages) {
            await decode(message.key!);
            await decode(message.value!);
          }
          decoded += batch.messages.length;
          if (decoded >= events) resolve();
        },
      }).catch(reject);
    });
    const ms = performance.now() - started;
    const cpu = { cpuSeconds: ownCpuSeconds() - cpuBefore, brokerCpuSeconds: cpuSeconds(brokerPid()) - brokerBefore };
    await consumer.disconnect();
    return { ms, ...cpu };
  }
  return { run };
}
