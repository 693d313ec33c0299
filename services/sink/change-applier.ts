import {
  INTEGRATION_COLUMNS, JSON_COLUMNS, apiUuid, canonicalJson, changedColumns, sha256,
  type IntegrationChange, type IntegrationState,
} from '../shared/integration-model.js';

/** What the sink knows of one integration after it applied the events so far. */
export interface AppliedState {
  arn: string;
  account_id: string;
  region: string;
  aws_api_id: string;
  integration_id: string;
  version: number;
  deleted: boolean;
  after: IntegrationState | null;
  content_hash: string;
  event_time: number;
  observed_at: number;
  source_type: string;
  source_id: string;
  last_snapshot_id: string;
  kafka_partition: number;
  kafka_offset: number;
}

export type CurrentRow = Record<string, string | number | boolean | null>;
export type HistoryRow = Record<string, string | number | boolean | null | string[]>;

export interface Position {
  partition: number;
  offset: number;
}

export interface Applied {
  state: AppliedState;
  /** null for a re-read of the same configuration: nothing to write. */
  current: CurrentRow | null;
  history: HistoryRow | null;
}

/** ClickHouse DateTime64 text for epoch milliseconds. */
export const chTime = (ms: number) => new Date(ms).toISOString();

function contentHash(after: IntegrationState): string {
  return sha256(canonicalJson(after));
}

/** The current-state row of a state: the 21 columns (maps as canonical JSON) and the bookkeeping columns. */
export function toCurrentRow(state: AppliedState): CurrentRow {
  const row: CurrentRow = {};
  const after = state.after;
  for (const column of INTEGRATION_COLUMNS) {
    const value = after ? after[column] : null;
    row[column] = JSON_COLUMNS.has(column) && value !== null ? canonicalJson(value) : (value as string | number | boolean | null);
  }
  if (!after) row.api_id = apiUuid(state.region, state.aws_api_id);
  if (row.api_gateway_managed === null) row.api_gateway_managed = false;
  return {
    ...row,
    account_id: state.account_id,
    region: state.region,
    aws_api_id: state.aws_api_id,
    arn: state.arn,
    version: state.version,
    is_deleted: state.deleted ? 1 : 0,
    event_time: chTime(state.event_time),
    observed_at: chTime(state.observed_at),
    source_type: state.source_type,
    source_id: state.source_id,
    last_snapshot_id: state.last_snapshot_id,
    content_hash: state.content_hash,
    kafka_partition: state.kafka_partition,
    kafka_offset: state.kafka_offset,
  };
}

/** Parses a current-state row back into the 21-column state (maps from their JSON). */
export function stateFromColumns(row: Record<string, unknown>): IntegrationState {
  const state: Record<string, unknown> = {};
  for (const column of INTEGRATION_COLUMNS) {
    const value = row[column];
    state[column] = JSON_COLUMNS.has(column) && typeof value === 'string' ? JSON.parse(value) : value;
  }
  return state as unknown as IntegrationState;
}

function historyRow(state: AppliedState, change: IntegrationChange, operation: string, changed: string[]): HistoryRow {
  return {
    arn: state.arn,
    account_id: state.account_id,
    region: state.region,
    aws_api_id: state.aws_api_id,
    integration_id: state.integration_id,
    api_id: apiUuid(state.region, state.aws_api_id),
    version: state.version,
    operation,
    event_op: change.op,
    event_id: change.event_id,
    event_time: chTime(state.event_time),
    observed_at: chTime(state.observed_at),
    source_type: change.source.type,
    snapshot_id: change.source.snapshot_id,
    cloudtrail_event_id: change.source.cloudtrail_event_id,
    cloudtrail_event_name: change.source.cloudtrail_event_name,
    principal_arn: change.source.principal_arn,
    source_ip: change.source.source_ip,
    user_agent: change.source.user_agent,
    after: state.after && !state.deleted ? canonicalJson(state.after) : null,
    changed_fields: changed,
    kafka_partition: state.kafka_partition,
    kafka_offset: state.kafka_offset,
  };
}

/**
 * Applies one change to what the sink knew of its integration. Returns null when nothing changes: a redelivered
 * message (at or below the applied offset), a read older than the applied one, or a deletion of something
 * already gone. A re-read of the same configuration only moves the in-memory position (nothing is written:
 * 80% of a snapshot's events are such re-reads, and which snapshot saw what is tracked by the sink).
 */
export function applyChange(prior: AppliedState | undefined, change: IntegrationChange, at: Position): Applied | null {
  if (prior && prior.kafka_partition === at.partition && at.offset <= prior.kafka_offset) return null;
  // Two sources (snapshot, CloudTrail) read AWS independently: a read older than the one applied is stale.
  if (prior && change.observed_at < prior.observed_at) return null;
  const live = prior && !prior.deleted ? prior : undefined;
  const base = {
    arn: change.arn,
    account_id: change.account_id,
    region: change.region,
    aws_api_id: change.api_id,
    integration_id: change.integration_id,
    version: (prior?.version ?? 0) + 1,
    observed_at: change.observed_at,
    kafka_partition: at.partition,
    kafka_offset: at.offset,
    last_snapshot_id: change.source.snapshot_id ?? prior?.last_snapshot_id ?? '',
  };
  const sourceId = change.source.cloudtrail_event_id ?? change.source.snapshot_id ?? '';

  if (change.op === 'DELETE' || change.after === null) {
    if (!live) return null;
    const state: AppliedState = {
      ...base,
      deleted: true,
      after: live.after,
      content_hash: '',
      event_time: change.event_time,
      source_type: change.source.type,
      source_id: sourceId,
    };
    return { state, current: toCurrentRow(state), history: historyRow(state, change, 'DELETE', []) };
  }

  const hash = contentHash(change.after);
  if (live && live.content_hash === hash) {
    return { state: { ...live, observed_at: change.observed_at, kafka_partition: at.partition, kafka_offset: at.offset }, current: null, history: null };
  }
  const state: AppliedState = {
    ...base,
    deleted: false,
    after: change.after,
    content_hash: hash,
    event_time: change.event_time,
    source_type: change.source.type,
    source_id: sourceId,
  };
  const operation = live ? 'UPDATE' : 'CREATE';
  return { state, current: toCurrentRow(state), history: historyRow(state, change, operation, changedColumns(live?.after ?? null, change.after)) };
}
