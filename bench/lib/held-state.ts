/**
 * What the sink holds in memory per live integration of its partitions, measured in a process of its own: the
 * workload's integrations created through the sink's own codec and `applyChange`, kept as the sink keeps them (the
 * applied state with its decoded after-image and that image's Avro bytes, and the key in the set of keys the tables
 * hold). Prints the JavaScript heap they take after full collections, and their after-images' Avro bytes.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { createChangeCodec } from '../../services/shared/codec.js';
import { applyChange, type AppliedState } from '../../services/sink/change-applier.js';
import { generateWorkload } from './workload.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const heapAfterCollecting = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const integrations = Number(process.env.BENCH_INTEGRATIONS);
const codec = createChangeCodec({ registryUrl: process.env.BENCH_REGISTRY_URL!, topic: `bench.state.${Date.now().toString(36)}` });
await codec.register();
// Every event a create: the first `inventory` events of a steady workload make the inventory.
const encoded: { key: Buffer; value: Buffer }[] = [];
for (const change of generateWorkload({ events: integrations, inventory: integrations, region: 'eu-west-3', accountId: '123456789012' })) {
  encoded.push(await codec.encode({ account_id: change.account_id, region: change.region, api_id: change.api_id, integration_id: change.integration_id }, change));
}

const before = heapAfterCollecting();
const applied = new Map<string, AppliedState>();
const inTables = new Set<string>();
for (const [offset, { key, value }] of encoded.entries()) {
  const { value: change, image } = await codec.decodeChange(key, value, (arn) => applied.get(arn)?.image);
  const result = applyChange(applied.get(change.arn), change, { partition: 0, offset }, image);
  if (!result) throw new Error(`event ${offset} changed nothing`);
  applied.set(result.state.arn, result.state);
  inTables.add(result.state.arn);
}
encoded.length = 0;
const heapBytes = heapAfterCollecting() - before;
const imageBytes = [...applied.values()].reduce((sum, state) => sum + state.image!.bytes.length, 0);
process.stdout.write(`${JSON.stringify({ integrations: applied.size, keys: inTables.size, heapBytes, imageBytes })}\n`);
