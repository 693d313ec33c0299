import {
  apiIdOf, canonicalColumn, canonicalState, changedColumns, sameState, sha256,
  type IntegrationChange, type IntegrationState, type IntegrationVersionKey,
} from '../shared/integration-model.js';
import type { EncodedImage } from '../shared/codec.js';
import { PoisonMessageError } from '../shared/errors.js';

/** What the sink knows of one integration after it applied the events so far. */
export interface AppliedState extends IntegrationVersionKey {
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
  /** `after` as it was last decoded, with its Avro bytes: a re-read with the same bytes is not decoded again. */
  image?: EncodedImage;
  /** A snapshot made this version, and a CloudTrail event has since named who made the change (see attributionOf). */
  attributed?: boolean;
  /**
   * Rows of this state waiting for their write: until they are written, memory is the only place that holds it. Made
   * with the state, not added later: one more shape of these objects slowed the sink's hot path.
   */
  pendingWrites: number;
}

export type CurrentRow = Record<string, string | number | boolean | null>;
export type HistoryRow = Record<string, string | number | boolean | null | string[]>;
export type AttributionRow = Record<string, string | number | null>;

export interface Position {
  partition: number;
  offset: number;
}

export interface Applied {
  state: AppliedState;
  /** null for a re-read of the same configuration: nothing to write. */
  current: CurrentRow | null;
  history: HistoryRow | null;
  /** Who made `state`'s version, which a snapshot saw first, as this CloudTrail event names it. */
  attribution?: AttributionRow;
}

/**
 * The latest instant the tables hold: DateTime64(3) columns end with 2299. The earliest is 1970, where the APIs
 * table's version (the observation time in milliseconds, a UInt64) begins.
 */
const LATEST_TIME = Date.UTC(2300, 0, 1) - 1;

/**
 * Throws for a decoded change the sink cannot apply: a state change without its after-image, a marker without its
 * scope, a time the tables cannot hold. The engine would refuse the last in every write of its block: the sink would
 * start over at it for ever, and nothing behind it in its partition would be applied.
 */
export function checkApplicable(change: IntegrationChange): void {
  if (change.op !== 'SNAPSHOT_COMPLETE' && change.op !== 'DELETE' && !change.after) {
    throw new PoisonMessageError('invalid', `${change.op} event ${change.event_id} has no after-image`);
  }
  if (change.op === 'SNAPSHOT_COMPLETE' && !change.snapshot) throw new PoisonMessageError('invalid', `marker ${change.event_id} has no snapshot scope`);
  for (const [field, ms] of [['event_time', change.event_time], ['observed_at', change.observed_at]] as const) {
    if (!(ms >= 0 && ms <= LATEST_TIME)) throw new PoisonMessageError('invalid', `event ${change.event_id}: ${field} ${ms} is outside 1970-2299, which the tables hold`);
  }
}

/** ClickHouse DateTime64 text for epoch milliseconds. */
export const chTime = (ms: number) => new Date(ms).toISOString();

/** A state's two times as ClickHouse text, formatted once for both rows of a change (often the same instant). */
interface RowTimes {
  event_time: string;
  observed_at: string;
}

function rowTimes(state: AppliedState): RowTimes {
  const eventTime = chTime(state.event_time);
  return { event_time: eventTime, observed_at: state.observed_at === state.event_time ? eventTime : chTime(state.observed_at) };
}

const mapColumn = (value: IntegrationState[keyof IntegrationState] | undefined) => (value === null || value === undefined ? null : canonicalColumn(value));

/**
 * The current-state row of a state: the 21 columns (maps as canonical JSON) and the bookkeeping columns. One
 * object literal: a row built column by column in a loop is a dictionary-mode object, several times slower to
 * build and to serialize, and the sink builds one per change.
 */
export function toCurrentRow(state: AppliedState, times = rowTimes(state)): CurrentRow {
  const after = state.after;
  return {
    api_id: apiIdOf(after, state.region, state.aws_api_id),
    api_gateway_managed: after?.api_gateway_managed ?? false,
    connection_id: after?.connection_id ?? null,
    connection_type: after?.connection_type ?? null,
    content_handling_strategy: after?.content_handling_strategy ?? null,
    credentials_arn: after?.credentials_arn ?? null,
    description: after?.description ?? null,
    integration_id: after?.integration_id ?? null,
    integration_method: after?.integration_method ?? null,
    integration_response_selection_expression: after?.integration_response_selection_expression ?? null,
    integration_subtype: after?.integration_subtype ?? null,
    integration_type: after?.integration_type ?? null,
    integration_uri: after?.integration_uri ?? null,
    passthrough_behavior: after?.passthrough_behavior ?? null,
    payload_format_version: after?.payload_format_version ?? null,
    request_parameters: mapColumn(after?.request_parameters),
    request_templates: mapColumn(after?.request_templates),
    response_parameters: mapColumn(after?.response_parameters),
    template_selection_expression: after?.template_selection_expression ?? null,
    timeout_in_millis: after?.timeout_in_millis ?? null,
    tls_config_server_name_to_verify: after?.tls_config_server_name_to_verify ?? null,
    account_id: state.account_id,
    region: state.region,
    aws_api_id: state.aws_api_id,
    arn: state.arn,
    version: state.version,
    is_deleted: state.deleted ? 1 : 0,
    event_time: times.event_time,
    observed_at: times.observed_at,
    source_type: state.source_type,
    source_id: state.source_id,
    last_snapshot_id: state.last_snapshot_id,
    content_hash: state.content_hash,
    kafka_partition: state.kafka_partition,
    kafka_offset: state.kafka_offset,
  };
}

/** afterJson: the canonical JSON of the after-image, null on DELETE. */
function historyRow(state: AppliedState, times: RowTimes, change: IntegrationChange, operation: string, changed: string[], afterJson: string | null): HistoryRow {
  return {
    arn: state.arn,
    account_id: state.account_id,
    region: state.region,
    aws_api_id: state.aws_api_id,
    integration_id: state.integration_id,
    api_id: apiIdOf(state.after, state.region, state.aws_api_id),
    version: state.version,
    operation,
    event_op: change.op,
    event_id: change.event_id,
    event_time: times.event_time,
    observed_at: times.observed_at,
    source_type: change.source.type,
    snapshot_id: change.source.snapshot_id,
    cloudtrail_event_id: change.source.cloudtrail_event_id,
    cloudtrail_event_name: change.source.cloudtrail_event_name,
    principal_arn: change.source.principal_arn,
    source_ip: change.source.source_ip,
    user_agent: change.source.user_agent,
    after: afterJson,
    changed_fields: changed,
    kafka_partition: state.kafka_partition,
    kafka_offset: state.kafka_offset,
  };
}

/** The state a change gives an integration: the next version, at the change's position. */
function nextState(
  prior: AppliedState | undefined, change: IntegrationChange, at: Position, after: IntegrationState | null, deleted: boolean, contentHash: string,
): AppliedState {
  return {
    arn: change.arn,
    account_id: change.account_id,
    region: change.region,
    aws_api_id: change.api_id,
    integration_id: change.integration_id,
    version: (prior?.version ?? 0) + 1,
    deleted,
    after,
    content_hash: contentHash,
    event_time: change.event_time,
    observed_at: change.observed_at,
    source_type: change.source.type,
    source_id: change.source.cloudtrail_event_id ?? change.source.snapshot_id ?? '',
    last_snapshot_id: change.source.snapshot_id ?? prior?.last_snapshot_id ?? '',
    kafka_partition: at.partition,
    kafka_offset: at.offset,
    pendingWrites: 0,
  };
}

/**
 * CloudTrail makes events visible minutes late, so a snapshot often reads a change first and makes a version that
 * names no principal; the event, when it comes, shows that same state (or deletion) and makes no version. If the
 * event happened before that snapshot's read, it made that version: its principal is recorded for the version, once.
 */
function attributionOf(prior: AppliedState, change: IntegrationChange, at: Position, sameOutcome: () => boolean): Applied | null {
  // Cheap tests first: this runs for every re-read and every stale read, and comparing states can mean hashing one.
  if (change.source.type !== 'CLOUDTRAIL' || prior.source_type !== 'SNAPSHOT' || prior.attributed || change.event_time > prior.event_time || !sameOutcome()) return null;
  prior.attributed = true;
  const { source } = change;
  return {
    state: prior,
    current: null,
    history: null,
    attribution: {
      arn: prior.arn,
      account_id: prior.account_id,
      region: prior.region,
      version: prior.version,
      event_id: change.event_id,
      event_time: chTime(change.event_time),
      cloudtrail_event_id: source.cloudtrail_event_id,
      cloudtrail_event_name: source.cloudtrail_event_name,
      principal_arn: source.principal_arn,
      source_ip: source.source_ip,
      user_agent: source.user_agent,
      kafka_partition: at.partition,
      kafka_offset: at.offset,
    },
  };
}

/** For a change already known to show the state (or deletion) it is applied to. */
const SAME = () => true;

const sameConfiguration = (state: AppliedState, after: IntegrationState) =>
  (state.after !== null && sameState(state.after, after)) || state.content_hash === sha256(canonicalState(after));

/**
 * Applies one change to what the sink knew of its integration. Returns null when nothing changes: a redelivered
 * message (at or below the applied offset, read no later than the applied state), a read older than the applied
 * one, or a deletion of something already gone, unless such a read or deletion names who made a version a snapshot
 * saw first (attributionOf). A re-read of the same configuration only moves the position of `prior`, in place
 * (nothing is written: 80% of a snapshot's events are such re-reads, and which snapshot saw what is tracked by the
 * sink).
 * `image`, the change's after-image with its bytes as the codec decoded it, is kept with the state that after-image
 * gives.
 */
export function applyChange(prior: AppliedState | undefined, change: IntegrationChange, at: Position, image: EncodedImage | null = null): Applied | null {
  // A message at or below the applied offset that was read later than the applied state is not a redelivery: its
  // topic was deleted and made again, and offsets started over.
  if (prior && prior.kafka_partition === at.partition && at.offset <= prior.kafka_offset && change.observed_at <= prior.observed_at) return null;
  const after = change.op === 'DELETE' ? null : change.after;
  // Two sources (snapshot, CloudTrail) read AWS independently: a read older than the one applied is stale.
  if (prior && change.observed_at < prior.observed_at) {
    return attributionOf(prior, change, at, () => (after === null ? prior.deleted : !prior.deleted && sameConfiguration(prior, after)));
  }
  const live = prior && !prior.deleted ? prior : undefined;

  if (after === null) {
    if (!live) return prior ? attributionOf(prior, change, at, SAME) : null;
    const state = nextState(prior, change, at, live.after, true, '');
    const times = rowTimes(state);
    return { state, current: toCurrentRow(state, times), history: historyRow(state, times, change, 'DELETE', [], null) };
  }

  // Most events are re-reads: comparing with the applied image is much cheaper than writing and hashing it.
  let same = live?.after ? sameState(live.after, after) : false;
  const afterJson = same ? '' : canonicalState(after);
  const hash = same ? '' : sha256(afterJson);
  same ||= live?.content_hash === hash;
  if (live && same) {
    // The same configuration: the image just decoded (and its bytes, see AppliedState.image) stands for it from now on.
    live.after = after;
    if (image) live.image = image;
    live.observed_at = change.observed_at;
    live.kafka_partition = at.partition;
    live.kafka_offset = at.offset;
    return attributionOf(live, change, at, SAME) ?? { state: live, current: null, history: null };
  }
  const state = nextState(prior, change, at, after, false, hash);
  if (image) state.image = image;
  const operation = live ? 'UPDATE' : 'CREATE';
  const times = rowTimes(state);
  return {
    state,
    current: toCurrentRow(state, times),
    history: historyRow(state, times, change, operation, changedColumns(live?.after ?? null, after), afterJson),
  };
}
