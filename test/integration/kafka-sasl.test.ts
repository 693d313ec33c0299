import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Pipeline } from '../../cli/pipeline.js';
import { STACK_SASL_USER } from '../../stack/parts.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { currentTimeouts } from '../support/cli.js';
import { awsClient, motoEndpoint, saslBrokers, testEnvironment } from '../support/harness.js';

const REGION = 'sa-east-1';
const aws = awsClient(REGION);

describe('brokers that require SASL', { timeout: 120_000 }, () => {
  let env: ReturnType<typeof testEnvironment>;
  let pipeline: Pipeline;
  let apis: SampleApi[];

  before(async () => {
    await resetEmulator(motoEndpoint);
    apis = await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'sasl' });
    env = testEnvironment({ region: REGION, extra: {
      KAFKA_BROKERS: saslBrokers.join(','),
      KAFKA_SASL_MECHANISM: 'plain',
      KAFKA_SASL_USERNAME: STACK_SASL_USER.username,
      KAFKA_SASL_PASSWORD: STACK_SASL_USER.password,
    } });
  });
  after(async () => {
    await pipeline?.close();
    aws.destroy();
    await env?.cleanup();
  });

  it('carry a snapshot through the topic into the tables, with KAFKA_SASL_* set', async () => {
    pipeline = await env.open({ snapshot: true, sink: true });
    await pipeline.snapshotter!.runOnce();
    await pipeline.sink!.waitForCatchUp();
    const integrations = apis.reduce((n, api) => n + api.integrationIds.length, 0);
    assert.equal((await currentTimeouts(env.env))?.size, integrations, 'every integration in the current-state table');
  });
});
