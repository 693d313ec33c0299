import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CreateApiCommand, CreateIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import type { Pipeline } from '../../cli/pipeline.js';
import { resetEmulator } from '../../stack/sample-inventory.js';
import { awsClient, motoEndpoint, rows, testEnvironment } from '../support/harness.js';

const REGION = 'sa-east-1';
const aws = awsClient(REGION);
// One partition: every event of a send goes into one record batch, which the broker takes up to 1 MiB.
const env = testEnvironment({ region: REGION, partitions: 1 });
const INTEGRATIONS = 120;

/** A WebSocket integration's request templates of ~12 KB, different for each integration. */
const templates = (n: number) => ({
  'application/json': `#set($n = ${n})\n${'{"field": "$input.path(\'$.field\')"},\n'.repeat(150)}`,
  'text/plain': `## ${n}\n${'$input.body\n'.repeat(500)}`,
});

describe('integrations with large request templates', { timeout: 180_000 }, () => {
  let pipeline: Pipeline;
  before(async () => {
    await resetEmulator(motoEndpoint);
    const api = await aws.send(new CreateApiCommand({ Name: 'large', ProtocolType: 'WEBSOCKET', RouteSelectionExpression: '$request.body.action' }));
    for (let n = 0; n < INTEGRATIONS; n++) {
      await aws.send(new CreateIntegrationCommand({
        ApiId: api.ApiId, IntegrationType: 'MOCK', RequestTemplates: templates(n), TemplateSelectionExpression: '\\$default',
      }));
    }
    pipeline = await env.open({ snapshot: true, sink: true });
  });
  after(async () => {
    await pipeline?.close();
    aws.destroy();
    await env.cleanup();
  });

  it('a snapshot whose events outweigh what the broker takes in one record batch completes, every template whole', async () => {
    const result = await pipeline.snapshotter!.runOnce();
    assert.deepEqual(result.regions.map((r) => [r.completed, r.error, r.integrations]), [[true, undefined, INTEGRATIONS]]);
    await pipeline.sink!.waitForCatchUp();
    const live = await rows<{ templates: string }>(pipeline,
      `SELECT request_templates AS templates FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE is_deleted = 0`);
    const expected = Array.from({ length: INTEGRATIONS }, (_, n) => JSON.stringify(templates(n), Object.keys(templates(n)).sort())).sort();
    assert.deepEqual(live.map((row) => row.templates).sort(), expected);
  });
});
