/** Benchmark 3: the project's codec against bare avsc and against JSON, on the same IntegrationChange objects. */
import avro from 'avsc';
import { KEY_SCHEMA, VALUE_SCHEMA, createChangeCodec } from '../services/shared/codec.js';
import type { IntegrationChange, IntegrationKey } from '../services/shared/integration-model.js';
import { machine, rate, ratio } from './lib/environment.js';
import type { BenchResult } from './lib/report.js';
import { generateWorkload } from './lib/workload.js';

const keyOf = (c: IntegrationChange): IntegrationKey => ({ account_id: c.account_id, region: c.region, api_id: c.api_id, integration_id: c.integration_id });

async function time(rounds: number, run: () => Promise<void> | void): Promise<number> {
  let best = Infinity;
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    await run();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

export async function runCodec(registryUrl: string, quick: boolean): Promise<BenchResult[]> {
  const count = quick ? 20_000 : 200_000;
  const rounds = quick ? 2 : 5;
  const changes = [...generateWorkload({ events: count, region: 'us-east-2', accountId: '123456789012' })];
  const codec = createChangeCodec({ registryUrl, topic: `bench.codec.${Date.now().toString(36)}` });
  await codec.register();
  const keyType = avro.Type.forSchema(JSON.parse(KEY_SCHEMA));
  const valueType = avro.Type.forSchema(JSON.parse(VALUE_SCHEMA));

  const encoded = { codec: [] as { key: Buffer; value: Buffer }[], avsc: [] as { key: Buffer; value: Buffer }[], json: [] as { key: Buffer; value: Buffer }[] };
  const encode = {
    codec: await time(rounds, async () => { encoded.codec = []; for (const c of changes) encoded.codec.push(await codec.encode(keyOf(c), c)); }),
    avsc: await time(rounds, () => { encoded.avsc = changes.map((c) => ({ key: keyType.toBuffer(keyOf(c)), value: valueType.toBuffer(c) })); }),
    json: await time(rounds, () => { encoded.json = changes.map((c) => ({ key: Buffer.from(JSON.stringify(keyOf(c))), value: Buffer.from(JSON.stringify(c)) })); }),
  };
  const decode = {
    // As the sink calls it: awaited only when a schema has to be fetched.
    codec: await time(rounds, async () => {
      for (const m of encoded.codec) {
        const decoded = codec.decode(m.key, m.value);
        if (decoded instanceof Promise) await decoded;
      }
    }),
    avsc: await time(rounds, () => { for (const m of encoded.avsc) { keyType.fromBuffer(m.key); valueType.fromBuffer(m.value); } }),
    json: await time(rounds, () => { for (const m of encoded.json) { JSON.parse(m.key.toString()); JSON.parse(m.value.toString()); } }),
  };
  const bytes = (list: { key: Buffer; value: Buffer }[]) => Math.round(list.reduce((n, m) => n + m.key.length + m.value.length, 0) / list.length);
  const rates = (ms: typeof encode) => ({ codec: rate(count, ms.codec), avsc: rate(count, ms.avsc), json: rate(count, ms.json) });
  const encodeRates = rates(encode);
  const decodeRates = rates(decode);
  const encodeRatio = ratio(encodeRates.codec, encodeRates.avsc);
  const decodeRatio = ratio(decodeRates.codec, decodeRates.avsc);
  return [{
    name: 'codec',
    size: quick ? 'quick' : 'full',
    measuredAt: new Date().toISOString(),
    machine: await machine(),
    target: 'the codec within 0.8 of bare avsc (encode and decode)',
    met: encodeRatio >= 0.8 && decodeRatio >= 0.8,
    summary: `encode ${encodeRatio} and decode ${decodeRatio} of bare avsc; codec ${encodeRates.codec}/${decodeRates.codec} events/s, avsc ${encodeRates.avsc}/${decodeRates.avsc}, JSON ${encodeRates.json}/${decodeRates.json} (encode/decode); bytes/event codec ${bytes(encoded.codec)}, avsc ${bytes(encoded.avsc)}, JSON ${bytes(encoded.json)}`,
    figures: {
      events: count, roundsBestOf: rounds,
      encodeEventsPerSecond: encodeRates, decodeEventsPerSecond: decodeRates,
      encodeRatioToAvsc: encodeRatio, decodeRatioToAvsc: decodeRatio,
      bytesPerEvent: { codec: bytes(encoded.codec), avsc: bytes(encoded.avsc), json: bytes(encoded.json) },
    },
  }];
}
