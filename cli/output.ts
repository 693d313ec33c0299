import Table from 'cli-table3';

/** Prints rows as a table with the given columns; long cells are cut so a terminal stays readable. */
export function printTable(rows: Record<string, unknown>[], columns: string[], maxWidth = 48): void {
  const table = new Table({ head: columns, style: { head: [], border: [] } });
  const cell = (value: unknown) => {
    const text = value === null || value === undefined ? '∅' : Array.isArray(value) ? value.join(',') : String(value);
    return text.length > maxWidth ? `${text.slice(0, maxWidth - 1)}…` : text;
  };
  for (const row of rows) table.push(columns.map((column) => cell(row[column])));
  process.stdout.write(`${table.toString()}\n`);
}
