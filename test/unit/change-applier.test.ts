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

  it('applies a change from a topic made again, whose offsets started over', () => {
    const update = change({ event_id: 'e2', observed_at: 9_000, after: { ...change().after!, timeout_in_millis: 50 } });
    const { state, history } = applyAll([[change(), 40], [update, 0]]);
    assert.deepEqual(history.map((row) => row.operation), ['CREATE', 'UPDATE']);
    assert.equal(state?.kafka_offset, 0);
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

  describe('naming who made a version a snapshot saw first', () => {
    const changed = { ...change().after!, timeout_in_millis: 4321 };
    const byAlice = (overrides: Partial<IntegrationChange>) => change({
      event_id: 'c1', op: 'UPDATE', after: changed,
      source: { type: 'CLOUDTRAIL', snapshot_id: null, cloudtrail_event_id: 'ct-1', cloudtrail_event_name: 'UpdateIntegration', principal_arn: 'arn:alice', source_ip: '203.0.113.10', user_agent: 'aws-cli' },
      ...overrides,
    });
    // The snapshot at 9 s read the change Alice made at 7 s; CloudTrail shows her event afterwards.
    const seenBySnapshot = () => {
      const first = applyChange(undefined, change(), { partition: 0, offset: 0 })!;
      return applyChange(first.state, change({ event_id: 's2', after: changed, event_time: 9_000, observed_at: 9_000 }), { partition: 0, offset: 1 })!.state;
    };

    it("records the event's principal for that version, once, and writes no version", () => {
      const snapshotVersion = seenBySnapshot();
      const named = applyChange(snapshotVersion, byAlice({ event_time: 7_000, observed_at: 60_000 }), { partition: 0, offset: 2 })!;
      assert.equal(named.history, null);
      assert.equal(named.current, null);
      assert.deepEqual(
        [named.attribution?.version, named.attribution?.principal_arn, named.attribution?.cloudtrail_event_id, named.attribution?.event_time],
        [2, 'arn:alice', 'ct-1', new Date(7_000).toISOString()]);
      const again = applyChange(named.state, byAlice({ event_id: 'c2', event_time: 8_000, observed_at: 61_000 }), { partition: 0, offset: 3 });
      assert.equal(again?.attribution, undefined, 'a version is named once');
    });

    it('also from an answer recorded before the snapshot read (an older observation), and for a deletion', () => {
      const fromAnswer = applyChange(seenBySnapshot(), byAlice({ event_time: 7_000, observed_at: 7_999 }), { partition: 0, offset: 2 });
      assert.equal(fromAnswer?.attribution?.principal_arn, 'arn:alice');
      const deleted = applyChange(seenBySnapshot(), change({ event_id: 'm1', op: 'DELETE', after: null, event_time: 20_000, observed_at: 20_000 }), { partition: 0, offset: 2 })!;
      const named = applyChange(deleted.state, byAlice({ event_id: 'c3', op: 'DELETE', after: null, event_time: 15_000, observed_at: 70_000 }), { partition: 0, offset: 3 });
      assert.deepEqual([named?.attribution?.version, named?.attribution?.principal_arn], [3, 'arn:alice']);
    });

    it('names no one for a change made after the snapshot read, a different state, or a version CloudTrail made', () => {
      assert.equal(applyChange(seenBySnapshot(), byAlice({ event_time: 9_500, observed_at: 60_000 }), { partition: 0, offset: 2 })?.attribution, undefined);
      const other = byAlice({ event_time: 7_000, observed_at: 5_000, after: { ...changed, timeout_in_millis: 1 } });
      assert.equal(applyChange(seenBySnapshot(), other, { partition: 0, offset: 2 })?.attribution, undefined);
      const byCloudTrail = applyChange(undefined, byAlice({ event_time: 7_000, observed_at: 7_500 }), { partition: 0, offset: 0 })!.state;
      assert.equal(applyChange(byCloudTrail, byAlice({ event_id: 'c4', event_time: 7_000, observed_at: 8_000 }), { partition: 0, offset: 1 })?.attribution, undefined);
    });
  });
});
