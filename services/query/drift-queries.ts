import { queryRows, type ClickHouseClient } from '../shared/clickhouse.js';
import { INTEGRATION_COLUMNS, stateFromColumns, type IntegrationState, type IntegrationVersionKey } from '../shared/integration-model.js';
import { fieldChanges, type FieldChange } from './field-changes.js';
import { parseIntegrationRef } from './time-input.js';

/** Where changes were made: history has no integration type (a deletion has no after-image to take it from). */
export interface ScopeFilter {
  account?: string;
  region?: string;
  /** AWS ApiId */
  api?: string;
}

export interface InventoryFilter extends ScopeFilter {
  /** integration_type */
  type?: string;
}

/** One integration in an answer: where it is, its version, and its 21 columns (maps as objects). */
export interface IntegrationView extends IntegrationState {
  arn: string;
  account_id: string;
  region: string;
  aws_api_id: string;
  version: number;
  event_time: string;
  source_type: string;
  principal_arn: string | null;
}

export interface HistoryEntry {
  version: number;
  operation: string;
  event_time: string;
  source_type: string;
  snapshot_id: string | null;
  cloudtrail_event_id: string | null;
  cloudtrail_event_name: string | null;
  principal_arn: string | null;
  changes: FieldChange[];
}

export interface Diff {
  added: IntegrationView[];
  removed: IntegrationView[];
  changed: { arn: string; changes: FieldChange[] }[];
}

/** One change, as history holds it, with its principal when CloudTrail named one. */
export interface ChangeEntry extends IntegrationVersionKey {
  event_time: string;
  operation: string;
  source_type: string;
  cloudtrail_event_name: string | null;
  principal_arn: string | null;
  source_ip: string | null;
  changed_fields: string[];
}

export interface ChangeFilter extends ScopeFilter {
  /** Part of a principal ARN (a role or session name, say); changes no CloudTrail event named never match. */
  principal?: string;
}

export interface PrincipalSummary {
  principal_arn: string | null;
  changes: number;
  creates: number;
  updates: number;
  deletes: number;
  last_change_time: string;
  last_change_arn: string;
  last_operation: string;
  last_event_name: string | null;
}

const chTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
const isoTime = (value: unknown) => `${String(value).replace(' ', 'T')}Z`;

// Every user value is a bound parameter; an absent filter binds '' and matches everything.
const SCOPE_SQL = `({account:String} = '' OR account_id = {account:String})
  AND ({region:String} = '' OR region = {region:String})
  AND ({api:String} = '' OR aws_api_id = {api:String})`;
const FILTER_SQL = `${SCOPE_SQL}
  AND ({type:String} = '' OR integration_type = {type:String})`;

const scopeParams = (filter: ScopeFilter) => ({ account: filter.account ?? '', region: filter.region ?? '', api: filter.api ?? '' });
const filterParams = (filter: InventoryFilter) => ({ ...scopeParams(filter), type: filter.type ?? '' });

function toView(row: Record<string, unknown>): IntegrationView {
  return {
    arn: String(row.arn),
    account_id: String(row.account_id),
    region: String(row.region),
    aws_api_id: String(row.aws_api_id),
    version: Number(row.version),
    event_time: isoTime(row.event_time),
    source_type: String(row.source_type),
    principal_arn: (row.principal_arn as string | null) ?? null,
    ...stateFromColumns(row),
    api_gateway_managed: Boolean(row.api_gateway_managed),
  };
}

function stateOf(view: IntegrationView): IntegrationState {
  return Object.fromEntries(INTEGRATION_COLUMNS.map((column) => [column, view[column]])) as unknown as IntegrationState;
}

/** The drift questions, answered from the tables and views of one database. */
export function createDriftQueries({ client, database }: { client: ClickHouseClient; database: string }) {
  // History with the principals CloudTrail named after a snapshot saw their change (schemas/clickhouse/003b).
  const history = `${database}.aws_apigatewayv2_api_integrations_history_attributed`;

  async function asOf(at: number, filter: InventoryFilter = {}): Promise<IntegrationView[]> {
    const rows = await queryRows<Record<string, unknown>>(client,
      `SELECT * FROM ${database}.aws_apigatewayv2_api_integrations_as_of(at = {at:DateTime64(3)}) WHERE ${FILTER_SQL} ORDER BY arn`,
      { at: chTime(at), ...filterParams(filter) });
    return rows.map(toView);
  }

  return {
    /** The live integrations, with the principal of each one's last change when CloudTrail named one. */
    async current(filter: InventoryFilter = {}): Promise<IntegrationView[]> {
      const rows = await queryRows<Record<string, unknown>>(client,
        `SELECT live.*, last.principal_arn AS principal_arn
           FROM (SELECT * FROM ${database}.aws_apigatewayv2_api_integrations_live WHERE ${FILTER_SQL}) AS live
           LEFT JOIN (SELECT arn, argMax(tuple(principal_arn), version).1 AS principal_arn FROM ${history} GROUP BY arn) AS last
             ON last.arn = live.arn
          ORDER BY live.arn`,
        filterParams(filter));
      return rows.map(toView);
    },

    asOf,

    /** Every version of one integration, oldest first, with the fields each one changed (old and new values). */
    async history(ref: string): Promise<HistoryEntry[]> {
      const parsed = parseIntegrationRef(ref);
      const rows = await queryRows<Record<string, unknown>>(client,
        `SELECT * FROM ${history}
          WHERE ({arn:String} != '' AND arn = {arn:String}) OR ({arn:String} = '' AND aws_api_id = {api:String} AND integration_id = {integration:String})
          ORDER BY version`,
        { arn: parsed.arn ?? '', api: parsed.apiId ?? '', integration: parsed.integrationId ?? '' });
      let previous: IntegrationState | null = null;
      return rows.map((row) => {
        const after = row.after ? (JSON.parse(String(row.after)) as IntegrationState) : null;
        const entry: HistoryEntry = {
          version: Number(row.version),
          operation: String(row.operation),
          event_time: isoTime(row.event_time),
          source_type: String(row.source_type),
          snapshot_id: (row.snapshot_id as string | null) ?? null,
          cloudtrail_event_id: (row.cloudtrail_event_id as string | null) ?? null,
          cloudtrail_event_name: (row.cloudtrail_event_name as string | null) ?? null,
          principal_arn: (row.principal_arn as string | null) ?? null,
          changes: fieldChanges(previous, after),
        };
        previous = after;
        return entry;
      });
    },

    /** Integrations added, removed and changed between two moments, with field-level (map key-level) changes. */
    async diff(from: number, to: number, filter: InventoryFilter = {}): Promise<Diff> {
      const [before, after] = await Promise.all([asOf(from, filter), asOf(to, filter)]);
      const beforeByArn = new Map(before.map((view) => [view.arn, view]));
      const afterByArn = new Map(after.map((view) => [view.arn, view]));
      const changed: Diff['changed'] = [];
      for (const [arn, view] of afterByArn) {
        const old = beforeByArn.get(arn);
        if (!old) continue;
        const changes = fieldChanges(stateOf(old), stateOf(view));
        if (changes.length > 0) changed.push({ arn, changes });
      }
      return {
        added: after.filter((view) => !beforeByArn.has(view.arn)),
        removed: before.filter((view) => !afterByArn.has(view.arn)),
        changed,
      };
    },

    /** Changes between two moments (both included), the latest first, at most `limit` of them. */
    async changes(since: number, until: number, filter: ChangeFilter, limit: number): Promise<ChangeEntry[]> {
      const rows = await queryRows<Record<string, unknown>>(client,
        `SELECT event_time, operation, arn, account_id, region, aws_api_id, integration_id, version, source_type,
                cloudtrail_event_name, principal_arn, source_ip, changed_fields
           FROM ${history}
          WHERE event_time >= {since:DateTime64(3)} AND event_time <= {until:DateTime64(3)} AND ${SCOPE_SQL}
            AND ({principal:String} = '' OR position(ifNull(principal_arn, ''), {principal:String}) > 0)
          ORDER BY event_time DESC, arn, version DESC
          LIMIT {limit:UInt64}`,
        { since: chTime(since), until: chTime(until), ...scopeParams(filter), principal: filter.principal ?? '', limit });
      return rows.map((row) => ({
        ...(row as unknown as ChangeEntry),
        event_time: isoTime(row.event_time),
        version: Number(row.version),
      }));
    },

    /** Changes between two moments (both included), grouped by principal, with counts and the latest change of each. */
    async who(since: number, until: number, filter: ScopeFilter = {}): Promise<PrincipalSummary[]> {
      const rows = await queryRows<Record<string, unknown>>(client,
        `SELECT * FROM ${database}.aws_apigatewayv2_api_integrations_changes_by_principal_between(
           since = {since:DateTime64(3)}, until = {until:DateTime64(3)}, account = {account:String}, region = {region:String}, api = {api:String})`,
        { since: chTime(since), until: chTime(until), ...scopeParams(filter) });
      return rows.map((row) => {
        const [arn, operation, eventName] = row.last_change as [string, string, string];
        return {
          principal_arn: (row.principal_arn as string | null) ?? null,
          changes: Number(row.changes),
          creates: Number(row.creates),
          updates: Number(row.updates),
          deletes: Number(row.deletes),
          last_change_time: isoTime(row.last_change_time),
          last_change_arn: arn,
          last_operation: operation,
          last_event_name: eventName || null,
        };
      });
    },
  };
}

export type DriftQueries = ReturnType<typeof createDriftQueries>;
