import type { ClickHouseClient } from '../shared/clickhouse.js';
import { insertLines, queryRows } from '../shared/clickhouse.js';
import { sha256, stateFromColumns } from '../shared/integration-model.js';
import { toCurrentRow, type AppliedState, type CurrentRow } from './change-applier.js';
import { InsertBuffer, type RowBlock, type RowLines } from './row-block.js';

export interface ApiRow {
  api_id: string;
  account_id: string;
  region: string;
  aws_api_id: string;
  arn: string;
  name: string | null;
  protocol_type: string | null;
  api_endpoint: string | null;
  version: number;
  is_deleted: number;
  /** ClickHouse DateTime64 text */
  observed_at: string;
}

/** What a completion marker covers: an account and region, or (api_id set) one API of it. */
export interface MarkerScope {
  account_id: string;
  region: string;
  api_id: string;
}

const toMillis = (value: unknown) => Date.parse(`${String(value).replace(' ', 'T')}Z`);

/** The sink's reads and writes of ClickHouse: what it knows per integration, and the four tables it writes. */
export function createStateStore({ client, database }: { client: ClickHouseClient; database: string }) {
  const current = `${database}.aws_apigatewayv2_api_integrations`;
  const history = `${database}.aws_apigatewayv2_api_integrations_history`;
  const apis = `${database}.aws_apigatewayv2_apis`;
  const attributions = `${database}.aws_apigatewayv2_api_integrations_attributions`;
  // Writes run one at a time (the sink's write batcher), each insert after the one before: one buffer serves them all.
  const assembled = new InsertBuffer();

  /**
   * Bulk insert as JSONCompactEachRow (arrays in a fixed column order), about 2.5 times cheaper for ClickHouse to
   * parse than JSONEachRow at our row sizes. Rows that carry identities (history) get a deduplication token made
   * of them, so retrying the same block after an unclear failure writes it once.
   */
  async function insert(table: string, rows: RowLines): Promise<void> {
    if (rows.count === 0) return;
    const settings: Record<string, string> = rows.ids.length > 0 ? { insert_deduplication_token: sha256(rows.ids.join('\n')) } : {};
    await insertLines(client, table, rows.columns, rows.bytes(assembled), settings);
  }

  function fromCurrent(row: Record<string, unknown>): AppliedState {
    return {
      arn: String(row.arn),
      account_id: String(row.account_id),
      region: String(row.region),
      aws_api_id: String(row.aws_api_id),
      integration_id: String(row.integration_id ?? ''),
      version: Number(row.version),
      deleted: Number(row.is_deleted) === 1,
      after: stateFromColumns(row),
      content_hash: String(row.content_hash),
      event_time: toMillis(row.event_time),
      observed_at: toMillis(row.observed_at),
      source_type: String(row.source_type),
      source_id: String(row.source_id),
      last_snapshot_id: String(row.last_snapshot_id),
      kafka_partition: Number(row.kafka_partition),
      kafka_offset: Number(row.kafka_offset),
      pendingWrites: 0,
    };
  }

  return {
    /**
     * What was applied for these ARNs. History is written before current state, so when history is ahead (a
     * crash between the two writes) the state comes from history and the current row needs repair.
     */
    async load(scope: { account_id: string; region: string }, arns: string[]): Promise<{ states: AppliedState[]; repairs: CurrentRow[] }> {
      if (arns.length === 0) return { states: [], repairs: [] };
      // Account and region first: they lead both tables' sort keys, so these reads use the primary index.
      // Not FINAL: FINAL drops rows whose is_deleted is 1, and the sink must know deletions too.
      const where = 'account_id = {account_id:String} AND region = {region:String} AND arn IN {arns:Array(String)}';
      const params = { ...scope, arns };
      // History's versions, two narrow columns: its whole rows (the after-images) are read only where it is ahead.
      // A version whose principal a CloudTrail event already recorded keeps it (see attributionOf).
      const [currentRows, historyVersions, attributed] = await Promise.all([
        queryRows<Record<string, unknown>>(client, `SELECT * FROM ${current} WHERE ${where} ORDER BY version DESC LIMIT 1 BY arn`, params),
        queryRows<{ arn: string; version: string }>(client, `SELECT arn, max(version) AS version FROM ${history} WHERE ${where} GROUP BY arn`, params),
        queryRows<{ arn: string; version: string }>(client, `SELECT arn, max(version) AS version FROM ${attributions} WHERE ${where} GROUP BY arn`, params),
      ]);
      const byArn = new Map(currentRows.map((row) => [String(row.arn), fromCurrent(row)]));
      const ahead = historyVersions.filter(({ arn, version }) => (byArn.get(arn)?.version ?? -1) < Number(version)).map(({ arn }) => arn);
      const latestHistory = ahead.length === 0 ? [] : await queryRows<Record<string, unknown>>(client,
        `SELECT arn, argMax(tuple(*), version) AS latest FROM ${history} WHERE ${where} GROUP BY arn`, { ...scope, arns: ahead });
      const repairs: CurrentRow[] = [];
      for (const { latest } of latestHistory as { latest: unknown[] }[]) {
        const h = Object.fromEntries(HISTORY_COLUMNS.map((name, index) => [name, latest[index]]));
        const known = byArn.get(String(h.arn));
        const after = h.after ? JSON.parse(String(h.after)) : (known?.after ?? null);
        const state: AppliedState = {
          arn: String(h.arn), account_id: String(h.account_id), region: String(h.region), aws_api_id: String(h.aws_api_id),
          integration_id: String(h.integration_id), version: Number(h.version), deleted: h.operation === 'DELETE', after,
          content_hash: h.operation === 'DELETE' ? '' : sha256(String(h.after)), event_time: toMillis(h.event_time),
          observed_at: toMillis(h.observed_at), source_type: String(h.source_type),
          source_id: String(h.cloudtrail_event_id ?? h.snapshot_id ?? ''), last_snapshot_id: String(h.snapshot_id ?? known?.last_snapshot_id ?? ''),
          kafka_partition: Number(h.kafka_partition), kafka_offset: Number(h.kafka_offset), pendingWrites: 0,
        };
        byArn.set(state.arn, state);
        repairs.push(toCurrentRow(state));
      }
      for (const { arn, version } of attributed) {
        const state = byArn.get(arn);
        if (state?.version === Number(version)) state.attributed = true;
      }
      return { states: [...byArn.values()], repairs };
    },

    /**
     * Live integrations of one scope in one partition that did not change after a complete read started and
     * whose state is older than the read: written before its marker (so a replayed old marker deletes nothing
     * newer), or observed before the read started. The second holds for a state written from a topic since deleted
     * and made again, whose offset says nothing about this topic's. The caller removes the ones the read saw.
     */
    async liveBeforeMarker(scope: MarkerScope & { partition: number; offset: number; started_at: number }): Promise<{ arn: string; aws_api_id: string }[]> {
      return queryRows<{ arn: string; aws_api_id: string }>(client,
        `SELECT arn, aws_api_id FROM ${current} FINAL
         WHERE account_id = {account_id:String} AND region = {region:String} AND kafka_partition = {partition:Int32}
           AND ({api_id:String} = '' OR aws_api_id = {api_id:String})
           AND is_deleted = 0 AND event_time < fromUnixTimestamp64Milli({started_at:Int64})
           AND (kafka_offset < {offset:Int64} OR observed_at < fromUnixTimestamp64Milli({started_at:Int64}))`,
        scope);
    },

    /**
     * Moves integrations' current rows to the partitions their keys go to now, with no offset there yet (-1): the
     * same version, every other column as it is (of equal versions, the row written last stands).
     */
    async handOver(moves: { arn: string; partition: number }[]): Promise<void> {
      if (moves.length === 0) return;
      // query(), not command(): only query() sends long parameters in the body (see createClickHouse); the moves may
      // be every integration of a partition.
      await queryRows(client, `INSERT INTO ${current}
          SELECT * REPLACE (toInt32(transform(arn, {arns:Array(String)}, {partitions:Array(Int32)}, kafka_partition)) AS kafka_partition, toInt64(-1) AS kafka_offset)
          FROM ${current} FINAL WHERE arn IN {arns:Array(String)}`,
      { arns: moves.map((move) => move.arn), partitions: moves.map((move) => move.partition) });
    },

    /**
     * The integration ARNs the tables hold, `atMost` of them when there are more: the sink looks up only these, never
     * a key it is seeing first.
     */
    async storedArns(atMost: number): Promise<Set<string>> {
      const rows = await queryRows<{ arn: string }>(client,
        `SELECT arn FROM (SELECT DISTINCT arn FROM ${history} UNION DISTINCT SELECT DISTINCT arn FROM ${current}) LIMIT {atMost:UInt64}`,
        { atMost: Number.isFinite(atMost) ? atMost : Number.MAX_SAFE_INTEGER });
      return new Set(rows.map((row) => row.arn));
    },

    /** The stored name, protocol and endpoint of every API, to write an API row only when it changed. */
    async apiInfo(): Promise<{ api_id: string; name: string | null; protocol_type: string | null; api_endpoint: string | null }[]> {
      return queryRows(client, `SELECT api_id, name, protocol_type, api_endpoint FROM ${apis} FINAL`);
    },

    async liveApisNotIn(scope: MarkerScope & { api_ids: string[] }): Promise<ApiRow[]> {
      const rows = await queryRows<ApiRow>(client,
        `SELECT * FROM ${apis} FINAL WHERE account_id = {account_id:String} AND region = {region:String}
           AND ({api_id:String} = '' OR aws_api_id = {api_id:String}) AND aws_api_id NOT IN {api_ids:Array(String)}`, scope);
      return rows.map((row) => ({ ...row, version: Number(row.version) }));
    },

    /** History first: a crash after it and before the current rows is repaired from history on the next load. */
    async write(rows: RowBlock): Promise<void> {
      await insert(history, rows.history);
      await insert(current, rows.current);
      await insert(apis, rows.apis);
      await insert(attributions, rows.attributions);
    },
  };
}

export type StateStore = ReturnType<typeof createStateStore>;

const HISTORY_COLUMNS = [
  'arn', 'account_id', 'region', 'aws_api_id', 'integration_id', 'api_id', 'version', 'operation', 'event_op', 'event_id',
  'event_time', 'observed_at', 'source_type', 'snapshot_id', 'cloudtrail_event_id', 'cloudtrail_event_name', 'principal_arn',
  'source_ip', 'user_agent', 'after', 'changed_fields', 'kafka_partition', 'kafka_offset',
];
