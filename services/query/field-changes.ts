import { INTEGRATION_COLUMNS, JSON_COLUMNS, type IntegrationState } from '../shared/integration-model.js';

export interface FieldChange {
  /** A column, or a key inside a map column: request_parameters['append:header.x'], response_parameters['404']['k']. */
  field: string;
  old: unknown;
  new: unknown;
}

const quote = (key: string) => `['${key.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}']`;

function mapChanges(path: string, before: unknown, after: unknown, out: FieldChange[]): void {
  const isMap = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object';
  if (isMap(before) && isMap(after)) {
    for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
      mapChanges(`${path}${quote(key)}`, before[key] ?? null, after[key] ?? null, out);
    }
    return;
  }
  if (JSON.stringify(before) !== JSON.stringify(after)) out.push({ field: path, old: before, new: after });
}

/**
 * What differs between two states of one integration, column by column; maps are compared key by key, so one
 * changed request parameter is one change. A null state (absent, deleted) compares as all-null.
 */
export function fieldChanges(before: IntegrationState | null, after: IntegrationState | null): FieldChange[] {
  const out: FieldChange[] = [];
  for (const column of INTEGRATION_COLUMNS) {
    const a = before ? before[column] : null;
    const b = after ? after[column] : null;
    if (JSON_COLUMNS.has(column) && a !== null && b !== null) mapChanges(column, a, b, out);
    else if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ field: column, old: a, new: b });
  }
  return out;
}
