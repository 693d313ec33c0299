import { integrationArn, mapIntegration, type ChangeSource, type IntegrationChange } from '../../services/shared/integration-model.js';

const ACCOUNT = '123456789012';

/** What a CloudTrail UpdateIntegration call of `principal` gives a change. */
export const cloudTrailSource = (eventId: string, principal = `arn:aws:iam::${ACCOUNT}:user/ops`): ChangeSource => ({
  type: 'CLOUDTRAIL', snapshot_id: null, cloudtrail_event_id: eventId, cloudtrail_event_name: 'UpdateIntegration', principal_arn: principal, source_ip: null, user_agent: null,
});

/** What a snapshot's read gives a change. */
export const snapshotSource = (snapshotId: string): ChangeSource => ({
  type: 'SNAPSHOT', snapshot_id: snapshotId, cloudtrail_event_id: null, cloudtrail_event_name: null, principal_arn: null, source_ip: null, user_agent: null,
});

/**
 * A change of one MOCK integration of the test account, as a producer writes it: an UPDATE from CloudTrail, or a
 * SNAPSHOT from a snapshot's read.
 */
export function integrationChange({ region, apiId, integrationId, source, eventTime, observedAt = eventTime, timeout = 3000 }: {
  region: string; apiId: string; integrationId: string; source: ChangeSource; eventTime: number; observedAt?: number; timeout?: number;
}): IntegrationChange {
  return {
    event_id: `${source.snapshot_id ?? source.cloudtrail_event_id}-${integrationId}`, op: source.type === 'SNAPSHOT' ? 'SNAPSHOT' : 'UPDATE',
    event_time: eventTime, observed_at: observedAt, source,
    account_id: ACCOUNT, region, api_id: apiId, integration_id: integrationId, arn: integrationArn(region, apiId, integrationId), api: null,
    after: mapIntegration(region, apiId, { IntegrationId: integrationId, IntegrationType: 'MOCK', TimeoutInMillis: timeout }),
    snapshot: null,
  };
}
