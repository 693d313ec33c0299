import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { STACK_SASL_USER, stackKafkaCaFile } from '../../stack/parts.js';
import { resetEmulator, seedSampleInventory } from '../../stack/sample-inventory.js';
import { currentTimeouts } from '../support/cli.js';
import { awsClient, motoEndpoint, ports, saslBrokers, testEnvironment, tlsBrokers } from '../support/harness.js';

const REGION = 'sa-east-1';

describe('brokers behind SASL or TLS', { timeout: 120_000 }, () => {
  const aws = awsClient(REGION);
  let integrations = 0;

  before(async () => {
    await resetEmulator(motoEndpoint);
    const apis = await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'secured' });
    integrations = apis.reduce((n, api) => n + api.integrationIds.length, 0);
  });
  after(() => aws.destroy());

  const setups: { name: string; extra: Record<string, string> }[] = [
    { name: 'SASL/PLAIN', extra: { KAFKA_BROKERS: saslBrokers.join(','), KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: STACK_SASL_USER.username, KAFKA_SASL_PASSWORD: STACK_SASL_USER.password } },
    { name: 'TLS, with the CA that signs the brokers\' certificate', extra: { KAFKA_BROKERS: tlsBrokers.join(','), KAFKA_SSL_CA_FILE: stackKafkaCaFile(ports.kafka) } },
  ];
  for (const { name, extra } of setups) {
    it(`${name}: a snapshot goes through the topic into the tables`, async () => {
      const env = testEnvironment({ region: REGION, extra });
      const pipeline = await env.open({ snapshot: true, sink: true });
      try {
        await pipeline.snapshotter!.runOnce();
        await pipeline.sink!.waitForCatchUp();
        assert.equal((await currentTimeouts(env.env))?.size, integrations, 'every integration in the current-state table');
      } finally {
        await pipeline.close();
        await env.cleanup();
      }
    });
  }
});
