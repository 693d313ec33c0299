import { hash } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';
import type { Integration as AwsIntegration } from '@aws-sdk/client-apigatewayv2';

/** The 21 columns of aws_apigatewayv2_api_integrations, as the Avro `Integration` record carries them. */
export interface IntegrationState {
  api_id: string;
  api_gateway_managed: boolean;
  connection_id: string | null;
  connection_type: string | null;
  content_handling_strategy: string | null;
  credentials_arn: string | null;
  description: string | null;
  integration_id: string | null;
  integration_method: string | null;
  integration_response_selection_expression: string | null;
  integration_subtype: string | null;
  integration_type: string | null;
  integration_uri: string | null;
  passthrough_behavior: string | null;
  payload_format_version: string | null;
  request_parameters: Record<string, string> | null;
  request_templates: Record<string, string> | null;
  response_parameters: Record<string, Record<string, string>> | null;
  template_selection_expression: string | null;
  timeout_in_millis: number | null;
  tls_config_server_name_to_verify: string | null;
}

export const INTEGRATION_COLUMNS = [
  'api_id', 'api_gateway_managed', 'connection_id', 'connection_type', 'content_handling_strategy', 'credentials_arn',
  'description', 'integration_id', 'integration_method', 'integration_response_selection_expression',
  'integration_subtype', 'integration_type', 'integration_uri', 'passthrough_behavior', 'payload_format_version',
  'request_parameters', 'request_templates', 'response_parameters', 'template_selection_expression',
  'timeout_in_millis', 'tls_config_server_name_to_verify',
] as const satisfies readonly (keyof IntegrationState)[];

export const JSON_COLUMNS = new Set<keyof IntegrationState>(['request_parameters', 'request_templates', 'response_parameters']);

export interface ApiInfo {
  name: string | null;
  protocol_type: string | null;
  api_endpoint: string | null;
}

export interface IntegrationKey {
  account_id: string;
  region: string;
  api_id: string;
  integration_id: string;
}

/** One version of one integration, as the tables name it: its ARN, where it lives, and the version. */
export interface IntegrationVersionKey {
  arn: string;
  account_id: string;
  region: string;
  aws_api_id: string;
  integration_id: string;
  version: number;
}

export type ChangeOp = 'SNAPSHOT' | 'CREATE' | 'UPDATE' | 'DELETE' | 'SNAPSHOT_COMPLETE';

export interface ChangeSource {
  type: 'SNAPSHOT' | 'CLOUDTRAIL';
  snapshot_id: string | null;
  cloudtrail_event_id: string | null;
  cloudtrail_event_name: string | null;
  principal_arn: string | null;
  source_ip: string | null;
  user_agent: string | null;
}

export interface SnapshotCompletion {
  snapshot_id: string;
  started_at: number;
  api_ids: string[];
  integration_count: number;
}

/** The Avro `IntegrationChange` value, field for field. Times are epoch milliseconds. */
export interface IntegrationChange extends IntegrationKey {
  event_id: string;
  op: ChangeOp;
  event_time: number;
  observed_at: number;
  source: ChangeSource;
  arn: string;
  api: ApiInfo | null;
  after: IntegrationState | null;
  snapshot: SnapshotCompletion | null;
}

// A fixed namespace so that the same API ARN gives the same UUID in every process and every release.
const API_UUID_NAMESPACE = '5b1e3b8e-4f36-5a8e-9d0c-2b7c8a61f0a4';

export function apiArn(region: string, apiId: string): string {
  return `arn:aws:apigateway:${region}::/apis/${apiId}`;
}

export function integrationArn(region: string, apiId: string, integrationId: string): string {
  return `${apiArn(region, apiId)}/integrations/${integrationId}`;
}

// uuidv5 is a SHA-1 per call, asked for every integration a snapshot maps; an account holds a bounded set of APIs.
const apiUuids = new Map<string, string>();
const API_UUID_CACHE_LIMIT = 100_000;

export function apiUuid(region: string, apiId: string): string {
  const arn = apiArn(region, apiId);
  let uuid = apiUuids.get(arn);
  if (uuid === undefined) {
    if (apiUuids.size >= API_UUID_CACHE_LIMIT) apiUuids.clear();
    uuid = uuidv5(arn, API_UUID_NAMESPACE);
    apiUuids.set(arn, uuid);
  }
  return uuid;
}

/** The UUID of an integration's API: the one its after-image carries, or the one its region and API id give. */
export function apiIdOf(after: IntegrationState | null, region: string, apiId: string): string {
  return after?.api_id ?? apiUuid(region, apiId);
}

const orNull = <T>(value: T | undefined): T | null => (value === undefined ? null : value);

function copyMap<V>(map: Record<string, V> | undefined, copyValue: (value: V) => V): Record<string, V> | null {
  if (map === undefined || map === null) return null;
  return Object.fromEntries(Object.entries(map).map(([key, value]) => [key, copyValue(value)]));
}

/** Maps GetIntegration's answer to the table's columns; an absent field stays null, an empty one stays empty. */
export function mapIntegration(region: string, apiId: string, aws: AwsIntegration): IntegrationState {
  return {
    api_id: apiUuid(region, apiId),
    api_gateway_managed: aws.ApiGatewayManaged ?? false,
    connection_id: orNull(aws.ConnectionId),
    connection_type: orNull(aws.ConnectionType),
    content_handling_strategy: orNull(aws.ContentHandlingStrategy),
    credentials_arn: orNull(aws.CredentialsArn),
    description: orNull(aws.Description),
    integration_id: orNull(aws.IntegrationId),
    integration_method: orNull(aws.IntegrationMethod),
    integration_response_selection_expression: orNull(aws.IntegrationResponseSelectionExpression),
    integration_subtype: orNull(aws.IntegrationSubtype),
    integration_type: orNull(aws.IntegrationType),
    integration_uri: orNull(aws.IntegrationUri),
    passthrough_behavior: orNull(aws.PassthroughBehavior),
    payload_format_version: orNull(aws.PayloadFormatVersion),
    request_parameters: copyMap(aws.RequestParameters, (v) => v),
    request_templates: copyMap(aws.RequestTemplates, (v) => v),
    response_parameters: copyMap(aws.ResponseParameters, (inner) => ({ ...inner })),
    template_selection_expression: orNull(aws.TemplateSelectionExpression),
    timeout_in_millis: orNull(aws.TimeoutInMillis),
    tls_config_server_name_to_verify: orNull(aws.TlsConfig?.ServerNameToVerify),
  };
}

/** Parses a row of the integration tables back into the 21-column state (maps from their JSON). */
export function stateFromColumns(row: Record<string, unknown>): IntegrationState {
  const state: Record<string, unknown> = {};
  for (const column of INTEGRATION_COLUMNS) {
    const value = row[column];
    state[column] = JSON_COLUMNS.has(column) && typeof value === 'string' ? JSON.parse(value) : value;
  }
  return state as unknown as IntegrationState;
}

/** A map (or map of maps) with its keys in sorted order; the same object when it is flat and already sorted. */
function sortedMap<T>(map: Record<string, T>): Record<string, T> {
  const keys = Object.keys(map);
  let canonical = true;
  for (let i = 0; i < keys.length && canonical; i++) {
    const value = map[keys[i]!];
    canonical = (i === 0 || keys[i - 1]! < keys[i]!) && (value === null || typeof value !== 'object');
  }
  if (canonical) return map;
  const out: Record<string, T> = {};
  for (const key of keys.sort()) {
    const value = map[key]!;
    out[key] = value !== null && typeof value === 'object' ? (sortedMap(value as Record<string, unknown>) as T) : value;
  }
  return out;
}

/** One column's value as canonical JSON: a map's keys sorted at every depth, so equal content gives equal text. */
export function canonicalColumn(value: IntegrationState[keyof IntegrationState]): string {
  return JSON.stringify(value !== null && typeof value === 'object' ? sortedMap(value as Record<string, unknown>) : value);
}

const sortedOrNull = <T>(map: T) => (map === null ? null : sortedMap(map as Record<string, unknown>));

/**
 * A state as canonical JSON: columns and map keys sorted at every depth, so equal content gives equal text (the
 * history's after-image, and the content hash the sink compares). One object literal with the columns in sorted
 * order: built key by key, it would be a dictionary-mode object, slower to build and to serialize.
 */
export function canonicalState(state: IntegrationState): string {
  const ordered: Record<keyof IntegrationState, unknown> = {
    api_gateway_managed: state.api_gateway_managed,
    api_id: state.api_id,
    connection_id: state.connection_id,
    connection_type: state.connection_type,
    content_handling_strategy: state.content_handling_strategy,
    credentials_arn: state.credentials_arn,
    description: state.description,
    integration_id: state.integration_id,
    integration_method: state.integration_method,
    integration_response_selection_expression: state.integration_response_selection_expression,
    integration_subtype: state.integration_subtype,
    integration_type: state.integration_type,
    integration_uri: state.integration_uri,
    passthrough_behavior: state.passthrough_behavior,
    payload_format_version: state.payload_format_version,
    request_parameters: sortedOrNull(state.request_parameters),
    request_templates: sortedOrNull(state.request_templates),
    response_parameters: sortedOrNull(state.response_parameters),
    template_selection_expression: state.template_selection_expression,
    timeout_in_millis: state.timeout_in_millis,
    tls_config_server_name_to_verify: state.tls_config_server_name_to_verify,
  };
  return JSON.stringify(ordered);
}

export function sha256(text: string): string {
  return hash('sha256', text, 'hex');
}

function sameMap(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key) || !sameValue(a[key], b[key])) return false;
  }
  return true;
}

/** Equal column values: scalars by value, maps by content whatever their key order. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  return sameMap(a as Record<string, unknown>, b as Record<string, unknown>);
}

/** The same configuration in every column (what equal canonical JSON says, without writing it). */
export function sameState(a: IntegrationState, b: IntegrationState): boolean {
  // The same object: a re-read whose after-image bytes matched the applied one's (most events).
  return a === b || INTEGRATION_COLUMNS.every((column) => sameValue(a[column], b[column]));
}

/** Columns whose values differ between two states; with no previous state, every non-null column. */
export function changedColumns(before: IntegrationState | null, after: IntegrationState): string[] {
  return INTEGRATION_COLUMNS.filter((column) => (before ? !sameValue(before[column], after[column]) : after[column] !== null));
}

/** A deterministic event id: the same source position and the same resource always give the same id. */
export function eventId(position: string, arn: string): string {
  return sha256(`${position}\n${arn}`).slice(0, 32);
}
