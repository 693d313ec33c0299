import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { STACK_DIR } from '../../stack/layout.js';
import { STACK_SASL_USER, stackCertificate, stackKafkaCaFile } from '../../stack/parts.js';
import { resetEmulator, seedSampleInventory } from '../../stack/sample-inventory.js';
import { apigwStream, currentTimeouts } from '../support/cli.js';
import { startClickHouseServer, stopClickHouseServer } from '../support/clickhouse-server-process.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { awsClient, motoEndpoint, ports, registryUrl, saslBrokers, testEnvironment, tlsBrokers, uniqueName } from '../support/harness.js';

const REGION = 'sa-east-1';
const REGISTRY_USER = { username: 'registry-key', password: 'p@ss/word' };

/** `url` with basic credentials in its user info, as SCHEMA_REGISTRY_URL takes them. */
function withCredentials(url: string, username: string, password: string): string {
  const target = new URL(url);
  target.username = encodeURIComponent(username);
  target.password = encodeURIComponent(password);
  return target.toString().replace(/\/$/, '');
}

describe('brokers behind SASL or TLS, and a registry that asks for credentials', { timeout: 180_000 }, () => {
  const aws = awsClient(REGION);
  // The local registry behind a proxy that answers 401 to a request without the right Authorization header.
  const expected = `Basic ${Buffer.from(`${REGISTRY_USER.username}:${REGISTRY_USER.password}`).toString('base64')}`;
  let registry: Awaited<ReturnType<typeof startFaultProxy>>;
  let integrations = 0;
  // A ClickHouse server over https, its certificate the one the stack's CA signs for the brokers' TLS listener.
  const caFile = stackKafkaCaFile(ports.kafka);
  const clickHouseDir = join(STACK_DIR, 'test-data', uniqueName('tls-server'));
  let clickHouse: { server: ChildProcess; url: string };

  before(async () => {
    registry = await startFaultProxy(registryUrl, (request) => (request.headers.authorization === expected ? 'forward' : { status: 401, body: '{"error_code":401,"message":"Unauthorized"}' }));
    clickHouse = await startClickHouseServer(clickHouseDir, { tls: stackCertificate(ports.kafka) });
    await resetEmulator(motoEndpoint);
    const apis = await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'secured' });
    integrations = apis.reduce((n, api) => n + api.integrationIds.length, 0);
  });
  after(async () => {
    await registry?.close();
    if (clickHouse) await stopClickHouseServer(clickHouse.server);
    rmSync(clickHouseDir, { recursive: true, force: true });
    aws.destroy();
  });

  const setups: { name: string; extra: () => Record<string, string> }[] = [
    ...['plain', 'scram-sha-256', 'scram-sha-512'].map((mechanism) => ({
      name: `SASL/${mechanism.toUpperCase()}`,
      extra: () => ({ KAFKA_BROKERS: saslBrokers.join(','), KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: STACK_SASL_USER.username, KAFKA_SASL_PASSWORD: STACK_SASL_USER.password }),
    })),
    { name: 'TLS, with the CA that signs the brokers\' certificate', extra: () => ({ KAFKA_BROKERS: tlsBrokers.join(','), KAFKA_SSL_CA_FILE: stackKafkaCaFile(ports.kafka) }) },
    { name: 'registry credentials in the URL\'s user info', extra: () => ({ SCHEMA_REGISTRY_URL: withCredentials(registry.url, REGISTRY_USER.username, REGISTRY_USER.password) }) },
    { name: 'a ClickHouse server over TLS, with the CA that signs its certificate', extra: () => ({ CLICKHOUSE_URL: clickHouse.url, CLICKHOUSE_CA_FILE: caFile }) },
  ];
  for (const { name, extra } of setups) {
    it(`${name}: a snapshot goes through the topic into the tables`, async () => {
      const env = testEnvironment({ region: REGION, extra: extra() });
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

  it('registry credentials it refuses stop the start with one line naming SCHEMA_REGISTRY_URL, without the password', async () => {
    const env = testEnvironment({ region: REGION, extra: { SCHEMA_REGISTRY_URL: withCredentials(registry.url, REGISTRY_USER.username, 'not-the-password') } });
    try {
      const result = await apigwStream(['snapshot', '--once'], env.env);
      assert.notEqual(result.status, 0);
      assert.equal(result.stderr.split('\n').length, 1, result.stderr);
      assert.match(result.stderr, /SCHEMA_REGISTRY_URL: the registry at http:\/\/127\.0\.0\.1:\d+\/apis\/ccompat\/v7 refused the credentials of "registry-key": HTTP 401/);
      assert.doesNotMatch(result.stderr, /not-the-password/);
    } finally {
      await env.cleanup();
    }
  });

  it('a ClickHouse server whose certificate no trusted CA signs stops the start with one line naming CLICKHOUSE_CA_FILE', async () => {
    const env = testEnvironment({ region: REGION, extra: { CLICKHOUSE_URL: clickHouse.url } });
    try {
      const result = await apigwStream(['sink'], env.env);
      assert.equal(result.status, 3, result.stderr);
      assert.equal(result.stderr.split('\n').length, 1, result.stderr);
      assert.match(result.stderr, /^apigw-stream: CLICKHOUSE_CA_FILE: the TLS certificate of the ClickHouse server at https:\/\/127\.0\.0\.1:\d+ is not trusted \(.+\): set CLICKHOUSE_CA_FILE to the CA that signs it$/);
    } finally {
      await env.cleanup();
    }
  });
});
