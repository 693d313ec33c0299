import Table from 'cli-table3';
import { Option } from 'commander';
import { stringify } from 'csv-stringify/sync';

export type Format = 'table' | 'json' | 'csv';
export type Row = Record<string, unknown>;

export const formatOption = () => new Option('--format <format>', 'table on a terminal, json or csv for scripts').choices(['table', 'json', 'csv']).default('table');

/**
 * Prints rows as a table with the given columns. Long cells are cut in the middle so a terminal stays readable and
 * both ends stay: an ARN's or a URI's distinguishing part is its end.
 */
export function printTable(rows: Record<string, unknown>[], columns: string[], maxWidth = 48): void {
  const table = new Table({ head: columns, style: { head: [], border: [] } });
  const head = Math.ceil((maxWidth - 1) / 2);
  const cell = (value: unknown) => {
    const text = value === null || value === undefined ? '∅' : Array.isArray(value) ? value.join(',') : String(value);
    return text.length > maxWidth ? `${text.slice(0, head)}…${text.slice(text.length - (maxWidth - 1 - head))}` : text;
  };
  for (const row of rows) table.push(columns.map((column) => cell(row[column])));
  process.stdout.write(`${table.toString()}\n`);
}

const cell = (value: unknown) => (value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value));

/**
 * Prints `json` as JSON, or `rows` as CSV or a table (cells cut to `maxWidth`); `nothing`: said on stderr instead of
 * an empty table (json and csv stay as they are, for scripts).
 */
export function emit(format: Format, json: unknown, rows: Row[], columns: string[], nothing: string, maxWidth = 60): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else if (format === 'csv') process.stdout.write(stringify(rows.map((row) => columns.map((c) => cell(row[c]))), { header: true, columns }));
  else if (rows.length === 0) process.stderr.write(`${nothing}\n`);
  else printTable(rows.map((row) => Object.fromEntries(columns.map((c) => [c, cell(row[c]) || null]))), columns, maxWidth);
}
