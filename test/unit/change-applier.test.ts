import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mapIntegration, type IntegrationChange } from '../../services/shared/integration-model.js';
import { applyChange, type AppliedState } from '../../services/sink/change-applier.js';

const ARN = 'arn:aws:apigateway:us-east-1::/apis/a1/integrations/i1';

function change(overrides: Partial<IntegrationChange> = {}): IntegrationChange {
  return {
    event_id: 'e1', op: 'SNAPSHOT', event_time: 1_000, observed_at: 1_000,
    source: { type: 'SNAPSHOT', snapshot_id: 's1', cloudtrail_event_id: null, cloudtrail_event_name: null, principal_arn: null, source_ip: null, user_agent: null },
    account_id: '123456789012', region: 'us-east-1', api_id: 'a1', integration_id: 'i1', arn: ARN, api: null,
    after: mapIntegration('us-east-1', 'a1', { IntegrationId: 'i1', IntegrationType: 'HTTP_PROXY', TimeoutInMillis: 30_000 }),
    snapshot: null,
    ...overrides,
  };
}

function applyAll(steps: [IntegrationChange, number][]): { state?: AppliedState; history: Record<string, unknown>[] } {
  let state: AppliedState | undefined;
  const history: Record<string, unknown>[] = [];
  for (const [event, offset] of steps) {
    const result = applyChange(state, event, { partition: 0, offset });
    if (!result) continue;
    state = result.state;
    if (result.history) history.push(result.history);
  }
  return { state, history };
}

describe('applying a change to the known state', () => {
  it('creates on first sight, with every non-null column as changed', () => {
    const { state, history } = applyAll([[change(), 0]]);
    assert.equal(state?.version, 1);
    assert.equal(history.length, 1);
    assert.equal(history[0]!.operation, 'CREATE');
    assert.deepEqual(history[0]!.changed_fields, ['api_id', 'api_gateway_managed', 'integration_id', 'integration_type', 'timeout_in_millis']);
  });

  it('writes nothing for a re-read of the same state, and moves only its position', () => {
    const reread = change({ event_id: 'e2', source: { ...change().source, snapshot_id: 's2' }, event_time: 5_000, observed_at: 5_000 });
    const first = applyChange(undefined, change(), { partition: 0, offset: 0 })!;
    const result = applyChange(first.state, reread, { partition: 0, offset: 1 })!;
    assert.equal(result.current, null);
    assert.equal(result.history, null);
    assert.equal(result.state.version, 1);
    assert.equal(result.state.event_time, 1_000, 'the last change time stays');
    assert.equal(result.state.observed_at, 5_000);
    assert.equal(result.state.kafka_offset, 1);
  });

  it('ignores a read older than the one applied', () => {
    const newer = change({ event_id: 'e2', observed_at: 9_000, after: { ...change().after!, timeout_in_millis: 99 } });
    const older = change({ event_id: 'e3', observed_at: 5_000, after: { ...change().after!, timeout_in_millis: 55 } });
    const { state, history } = applyAll([[change(), 0], [newer, 1], [older, 2]]);
    assert.equal(state?.after?.timeout_in_millis, 99);
    assert.equal(history.length, 2);
  });

  it('ignores a redelivered message at or below the applied offset', () => {
    const update = change({ event_id: 'e2', after: { ...change().after!, timeout_in_millis: 50 } });
    const { state, history } = applyAll([[change(), 0], [update, 1], [change(), 0], [update, 1]]);
    assert.equal(history.length, 2);
    assert.equal(state?.after?.timeout_in_millis, 50);
  });

  it('records an update with the fields that changed', () => {
    const update = change({ event_id: 'e2', after: { ...change().after!, timeout_in_millis: 50, description: '' } });
    const { history } = applyAll([[change(), 0], [update, 1]]);
    assert.equal(history[1]!.operation, 'UPDATE');
    assert.deepEqual(history[1]!.changed_fields, ['description', 'timeout_in_millis']);
  });

  it('deletes once, and a deletion of something gone writes nothing', () => {
    const deletion = change({ event_id: 'e3', op: 'DELETE', after: null });
    const { state, history } = applyAll([[change(), 0], [deletion, 1], [change({ event_id: 'e4', op: 'DELETE', after: null }), 2]]);
    assert.equal(state?.deleted, true);
    assert.deepEqual(history.map((row) => row.operation), ['CREATE', 'DELETE']);
    assert.equal(history[1]!.after, null);
    assert.equal(applyChange(undefined, deletion, { partition: 0, offset: 0 }), null);
  });

  it('creates again when a deleted integration reappears', () => {
    const { history } = applyAll([[change(), 0], [change({ event_id: 'e2', op: 'DELETE', after: null }), 1], [change({ event_id: 'e3' }), 2]]);
    assert.deepEqual(history.map((row) => [row.operation, row.version]), [['CREATE', 1], ['DELETE', 2], ['CREATE', 3]]);
  });
});
