import Table from 'cli-table3';

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
