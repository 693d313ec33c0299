/**
 * Benchmark 4: a full snapshot to the topic against a bare SDK loop making the same list calls at the same
 * concurrency, over the same emulated inventory; and the AWS calls made per integration.
 */
import { ApiGatewayV2Client, CreateApiCommand, CreateIntegrationCommand, GetApisCommand, GetIntegrationsCommand } from '@aws-sdk/client-apigatewayv2';
import pLimit from 'p-limit';
import { openPipeline } from '../cli/pipeline.js';
import { loadConfig } from '../services/shared/config.js';
import { createLogger } from '../services/shared/logger.js';
import { createMetrics } from '../services/shared/metrics.js';
import { deleteTopicsStartingWith } from '../test/support/topics.js';
import { machine, rate, ratio } from './lib/environment.js';
import type { BenchResult } from './lib/report.js';

const CONCURRENCY = 8;

async function listAll(client: ApiGatewayV2Client, call: <T>(run: () => Promise<T>) => Promise<T>) {
  const apis = [];
  let token: string | undefined;
  do {
    const page = await call(() => client.send(new GetApisCommand({ MaxResults: '500', NextToken: token })));
    apis.push(...(page.Items ?? []));
    token = page.NextToken;
  } while (token);
  return apis;
}

/** Tops the region up to `apis` APIs of `perApi` integrations (the emulator keeps them while the stack runs). */
async function seed(client: ApiGatewayV2Client, apis: number, perApi: number): Promise<void> {
  const existing = (await listAll(client, (run) => run())).length;
  if (existing >= apis) return;
  process.stderr.write(`snapshot: seeding ${apis - existing} APIs x ${perApi} integrations in the emulator\n`);
  const limit = pLimit(CONCURRENCY);
  await Promise.all(Array.from({ length: apis - existing }, (_, i) => limit(async () => {
    const api = await client.send(new CreateApiCommand({ Name: `bench-${existing + i}`, ProtocolType: 'HTTP' }));
    for (let j = 0; j < perApi; j++) {
      await client.send(new CreateIntegrationCommand({
        ApiId: api.ApiId, IntegrationType: 'HTTP_PROXY', IntegrationMethod: 'GET', PayloadFormatVersion: '1.0',
        IntegrationUri: `https://backend-${i}.example.com/${j}`, RequestParameters: { 'append:header.x-bench': String(j) },
      }));
    }
  })));
}

/** Baseline: the same list calls at the same concurrency, and nothing else. */
async function bareLoop(client: ApiGatewayV2Client): Promise<{ ms: number; integrations: number; calls: number }> {
  let calls = 0;
  const call = <T>(run: () => Promise<T>) => { calls++; return run(); };
  const started = performance.now();
  const apis = await listAll(client, call);
  const limit = pLimit(CONCURRENCY);
  const counts = await Promise.all(apis.map((api) => limit(async () => {
    let n = 0;
    let token: string | undefined;
    do {
      const page = await call(() => client.send(new GetIntegrationsCommand({ ApiId: api.ApiId, MaxResults: '500', NextToken: token })));
      n += page.Items?.length ?? 0;
      token = page.NextToken;
    } while (token);
    return n;
  })));
  return { ms: performance.now() - started, integrations: counts.reduce((a, b) => a + b, 0), calls };
}

export async function runSnapshotBench(stack: { brokers: string[]; registryUrl: string; motoEndpoint: string }, quick: boolean): Promise<BenchResult[]> {
  const [apis, perApi, rounds] = quick ? [40, 10, 1] : [2000, 10, 3];
  const region = quick ? 'eu-west-3' : 'eu-south-1';
  const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench' };
  process.env.AWS_ACCESS_KEY_ID ??= credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY ??= credentials.secretAccessKey;
  const client = new ApiGatewayV2Client({ region, endpoint: stack.motoEndpoint, retryMode: 'adaptive', maxAttempts: 10 });
  await seed(client, apis, perApi);

  const config = loadConfig({
    ...process.env, KAFKA_BROKERS: stack.brokers.join(','), SCHEMA_REGISTRY_URL: stack.registryUrl, AWS_REGIONS: region,
    AWS_ENDPOINT_URL: stack.motoEndpoint, APIGW_TOPIC: `bench.snapshot.${Date.now().toString(36)}`, APIGW_SNAPSHOT_CONCURRENCY: String(CONCURRENCY), LOG_LEVEL: 'warn',
  });
  const metrics = createMetrics();
  const pipeline = await openPipeline({ config, logger: createLogger('warn'), metrics, snapshot: true, listen: false, sink: false, interactive: false });
  // Alternate the two, best of each: the emulator is the bottleneck of both and the machine is noisy.
  let bestBare = { ms: Infinity, integrations: 0, calls: 0 };
  let bestSnapshot = { ms: Infinity, integrations: 0 };
  for (let round = 0; round < rounds; round++) {
    const bare = await bareLoop(client);
    if (bare.ms < bestBare.ms) bestBare = bare;
    const started = performance.now();
    const result = await pipeline.snapshotter!.runOnce();
    const ms = performance.now() - started;
    if (ms < bestSnapshot.ms) bestSnapshot = { ms, integrations: result.regions[0]!.integrations };
  }
  const calls = (await metrics.awsCalls.get()).values.reduce((n, v) => n + v.value, 0) / rounds;
  await pipeline.close();
  client.destroy();
  await deleteTopicsStartingWith(stack.brokers, config.topic);

  const snapshotRate = rate(bestSnapshot.integrations, bestSnapshot.ms);
  const bareRate = rate(bestBare.integrations, bestBare.ms);
  const callsPerIntegration = Math.round((calls / bestSnapshot.integrations) * 1000) / 1000;
  const floor = Math.round(((Math.ceil(apis / 500) + apis * Math.ceil(perApi / 100)) / (apis * perApi)) * 1000) / 1000;
  return [{
    name: 'snapshot',
    size: quick ? 'quick' : 'full',
    measuredAt: new Date().toISOString(),
    machine: await machine(),
    target: '>= 0.9 of the bare SDK loop; AWS calls per integration at the floor',
    met: snapshotRate / bareRate >= 0.9 && callsPerIntegration <= floor,
    summary: `${ratio(snapshotRate, bareRate)} of the bare loop; snapshot ${snapshotRate} integrations/s (${Math.round(bestSnapshot.ms)} ms), bare loop ${bareRate}/s (${Math.round(bestBare.ms)} ms); ${callsPerIntegration} AWS calls per integration (floor ${floor})`,
    figures: {
      apis, integrationsPerApi: perApi, concurrency: CONCURRENCY, roundsBestOf: rounds,
      snapshot: { ms: Math.round(bestSnapshot.ms), integrations: bestSnapshot.integrations, integrationsPerSecond: snapshotRate },
      bareLoop: { ms: Math.round(bestBare.ms), integrations: bestBare.integrations, integrationsPerSecond: bareRate, calls: bestBare.calls },
      ratioToBareLoop: ratio(snapshotRate, bareRate),
      awsCallsPerIntegration: callsPerIntegration,
      awsCallsPerIntegrationFloor: floor,
    },
  }];
}
