/**
 * The sink benchmark's workload: a deterministic stream of change events over a population of integrations —
 * 80% snapshot re-reads of unchanged integrations, 15% updates, 5% creates and deletes — with realistic sizes
 * (a fifth of the integrations carry request templates of a few KB, as WebSocket ones do).
 */
import { integrationArn, mapIntegration, type ChangeSource, type IntegrationChange } from '../../services/shared/integration-model.js';

export interface WorkloadShape {
  events: number;
  region: string;
  accountId: string;
  /**
   * A steady inventory: the first `inventory` events create it, and the rest hold it steady, as many creates as
   * deletes (2.5% each) beside the same re-reads and updates. Without it the inventory grows as the stream goes
   * (4% creates, 1% deletes).
   */
  inventory?: number;
}

export interface WorkloadSummary {
  events: number;
  creates: number;
  updates: number;
  deletes: number;
  rereads: number;
  /** Integrations alive at the end. */
  live: number;
  /** Rows the history table holds at the end: one per create, update and delete. */
  historyRows: number;
}

/** A small seeded PRNG (mulberry32), so every run and every baseline sees the same stream. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function template(rng: () => number, kilobytes: number): string {
  const lines = ['#set($body = $input.json(\'$\'))', '{'];
  while (lines.join('\n').length < kilobytes * 1024) {
    const field = `field_${Math.floor(rng() * 1e6)}`;
    lines.push(`  "${field}": "$util.escapeJavaScript($input.path('$.${field}'))",`);
  }
  lines.push('  "end": true', '}');
  return lines.join('\n');
}

/** Every event in order; returns what the tables must hold at the end. A generator, so 1M events never sit in memory. */
export function* generateWorkload(shape: WorkloadShape): Generator<IntegrationChange, WorkloadSummary> {
  const rng = random(42);
  const inventory = Math.min(shape.inventory ?? 0, shape.events);
  const rest = shape.events - inventory;
  const creates = inventory + Math.round(rest * (inventory ? 0.025 : 0.04));
  const deletes = Math.round(rest * (inventory ? 0.025 : 0.01));
  const updates = Math.round(rest * 0.15);
  const rereads = shape.events - creates - deletes - updates;
  const live: { apiId: string; integrationId: string; version: number; templated: boolean }[] = [];
  const base = Date.parse('2026-11-01T00:00:00Z');
  const snapshotSource = (n: number): ChangeSource => ({ type: 'SNAPSHOT', snapshot_id: `bench-snapshot-${n}`, cloudtrail_event_id: null, cloudtrail_event_name: null, principal_arn: null, source_ip: null, user_agent: null });
  const trailSource = (n: number): ChangeSource => ({
    type: 'CLOUDTRAIL', snapshot_id: null, cloudtrail_event_id: `bench-event-${n}`, cloudtrail_event_name: 'UpdateIntegration',
    principal_arn: `arn:aws:sts::${shape.accountId}:assumed-role/Deployer/user${n % 17}`, source_ip: '203.0.113.10', user_agent: 'terraform/1.9.5',
  });
  const templates = Array.from({ length: 16 }, (_, i) => template(rng, 2 + (i % 3)));

  let left = { creates, updates, deletes, rereads };
  for (let n = 0; n < shape.events; n++) {
    // Creates come first while there is nothing to act on (or the steady inventory is being made), then the mix is
    // drawn in proportion to what is left.
    const total = left.creates + left.updates + left.deletes + left.rereads;
    const pick = live.length < 10 || n < inventory ? 0 : rng() * total;
    let kind: keyof typeof left;
    if (pick < left.creates && left.creates > 0) kind = 'creates';
    else if (pick < left.creates + left.updates && left.updates > 0) kind = 'updates';
    else if (pick < left.creates + left.updates + left.deletes && left.deletes > 0) kind = 'deletes';
    else kind = left.rereads > 0 ? 'rereads' : left.updates > 0 ? 'updates' : 'creates';
    left = { ...left, [kind]: left[kind] - 1 };

    const time = base + n;
    let target: (typeof live)[number];
    if (kind === 'creates') {
      // Every fifth API is a WebSocket API, whose integrations carry request templates.
      const apiIndex = Math.floor(live.length / 100);
      target = { apiId: `api${String(apiIndex).padStart(5, '0')}`, integrationId: `int${String(n).padStart(8, '0')}`, version: 0, templated: apiIndex % 5 === 0 };
      live.push(target);
    } else {
      const index = Math.floor(rng() * live.length);
      target = live[index]!;
      if (kind === 'deletes') {
        live[index] = live[live.length - 1]!;
        live.pop();
      }
      if (kind === 'updates') target.version++;
    }
    const after = kind === 'deletes' ? null : mapIntegration(shape.region, target.apiId, {
      IntegrationId: target.integrationId,
      IntegrationType: target.templated ? 'AWS' : 'HTTP_PROXY',
      IntegrationMethod: 'POST',
      IntegrationUri: `https://backend-${target.apiId}.example.com/${target.integrationId}`,
      PayloadFormatVersion: target.templated ? undefined : '1.0',
      TimeoutInMillis: 1000 + target.version,
      Description: `integration ${target.integrationId} revision ${target.version}`,
      RequestParameters: { 'append:header.x-request-id': '$context.requestId', 'overwrite:header.x-revision': String(target.version) },
      RequestTemplates: target.templated ? { 'application/json': templates[target.version % templates.length]! } : undefined,
      TemplateSelectionExpression: target.templated ? '\\$default' : undefined,
    });
    yield {
      event_id: `bench-${n}`,
      op: kind === 'creates' ? 'CREATE' : kind === 'updates' ? 'UPDATE' : kind === 'deletes' ? 'DELETE' : 'SNAPSHOT',
      event_time: time,
      observed_at: time,
      source: kind === 'rereads' ? snapshotSource(Math.floor(n / 50_000)) : trailSource(n),
      account_id: shape.accountId,
      region: shape.region,
      api_id: target.apiId,
      integration_id: target.integrationId,
      arn: integrationArn(shape.region, target.apiId, target.integrationId),
      api: { name: target.apiId, protocol_type: target.templated ? 'WEBSOCKET' : 'HTTP', api_endpoint: `https://${target.apiId}.execute-api.${shape.region}.amazonaws.com` },
      after,
      snapshot: null,
    };
  }
  return { events: shape.events, creates, updates, deletes, rereads, live: live.length, historyRows: creates + updates + deletes };
}
