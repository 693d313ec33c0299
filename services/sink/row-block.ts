import { JSON_COLUMNS } from '../shared/integration-model.js';
import type { AppliedState } from './change-applier.js';

/**
 * Rows are written into chunks of this size, taken from spare ones when there are some and given back once the rows
 * in them are written (`releaseBlock`). Buffers are memory outside V8's heap, which V8 still counts: once ~64 MB more
 * of it is held than after the last full collection, it starts another. Row buffers live until their write, long
 * enough to be counted, so new ones for every block started most of a sink's full collections (47 per 1M events;
 * with reused chunks and a reused insert buffer, 7).
 */
const CHUNK_BYTES = 64 * 1024;
/** Spare chunks kept for reuse at most: 64 MiB, the rows of two blocks of ~10,000 rows. */
const MOST_SPARE_CHUNKS = 1024;
const spareChunks: Buffer[] = [];
const COMMA = 0x2c;
const CLOSING_BRACKET = 0x5d;
const NEWLINE = 0x0a;

/** A JSON-text column's value as it goes into the line. */
const jsonText = (value: unknown) => (value as string | null) ?? 'null';

/**
 * Rows of one table as JSONCompactEachRow lines, serialized the moment they are made. Rows wait for their write
 * as bytes outside the JS heap, not as thousands of row objects that every garbage collection copies and then
 * promotes; and the write has nothing left to serialize.
 *
 * Columns named in `jsonColumns` hold JSON text (or null) and go into the line as that text, not as a string
 * that quotes it: ClickHouse reads a JSON object into a String column as its exact text
 * (input_format_json_read_objects_as_strings), and escaping every quote of a few-KB after-image was most of the
 * cost of a history row.
 */
export class RowLines {
  private columnNames: readonly string[] | undefined;
  private plainColumns: readonly string[] = [];
  private readonly sealed: Buffer[] = [];
  private chunk: Buffer = Buffer.allocUnsafe(0);
  private used = 0;
  /** The spare-size chunks these rows are in, to give back once they are written. */
  private chunks: Buffer[] = [];
  /** The identity of every row (history's `arn@version`), for a deduplication token; empty when not asked for. */
  readonly ids: string[] = [];
  count = 0;

  constructor(private readonly jsonColumns: readonly string[] = []) {}

  /** Adds one row; every row of a table has the same keys in the same order (one object literal makes them). */
  add(row: Readonly<Record<string, unknown>>, id?: string): void {
    if (!this.columnNames) {
      this.plainColumns = Object.keys(row).filter((column) => !this.jsonColumns.includes(column));
      this.columnNames = [...this.plainColumns, ...this.jsonColumns];
    }
    // Written piece by piece: joined into one string first, every line was copied once more (a fifth of what the
    // sink allocated on the JS heap).
    const plain = JSON.stringify(this.plainColumns.map((column) => row[column]));
    let length = plain.length + 1;
    for (const column of this.jsonColumns) length += jsonText(row[column]).length + 1;
    // A UTF-16 code unit is at most 3 UTF-8 bytes, so the line fits whatever it holds.
    const room = length * 3;
    if (this.used + room > this.chunk.length) this.nextChunk(room);
    const chunk = this.chunk;
    let used = this.used + chunk.write(plain, this.used);
    if (this.jsonColumns.length > 0) {
      used -= 1; // over the plain columns' closing bracket
      for (const column of this.jsonColumns) {
        chunk[used++] = COMMA;
        used += chunk.write(jsonText(row[column]), used);
      }
      chunk[used++] = CLOSING_BRACKET;
    }
    chunk[used++] = NEWLINE;
    this.used = used;
    this.count += 1;
    if (id !== undefined) this.ids.push(id);
  }

  /** Moves another block's rows after these (the other must not be used afterwards). */
  append(other: RowLines): void {
    if (other.count === 0) return;
    if (this.columnNames && this.columnNames.join() !== other.columnNames!.join()) {
      throw new Error(`rows with columns (${other.columnNames!.join()}) appended to rows with (${this.columnNames.join()})`);
    }
    this.columnNames ??= other.columnNames;
    this.seal();
    other.seal();
    this.sealed.push(...other.sealed);
    this.chunks.push(...other.chunks);
    other.chunks = [];
    this.ids.push(...other.ids);
    this.count += other.count;
  }

  get columns(): readonly string[] {
    return this.columnNames ?? [];
  }

  /**
   * All lines, in the order they were added: as they are when they are in one piece, otherwise copied into one
   * buffer, `into`'s when given (valid until its next use).
   */
  bytes(into?: InsertBuffer): Buffer {
    this.seal();
    if (this.sealed.length === 1) return this.sealed[0]!;
    if (!into) return Buffer.concat(this.sealed);
    const target = into.reserve(this.sealedBytes());
    let length = 0;
    for (const piece of this.sealed) length += piece.copy(target, length);
    return target.subarray(0, length);
  }

  /** Gives the chunks back for other rows to be written into: these rows and their bytes must not be used again. */
  release(): void {
    for (const chunk of this.chunks) if (spareChunks.length < MOST_SPARE_CHUNKS) spareChunks.push(chunk);
    this.chunks = [];
  }

  /** Closes what the current chunk holds; its free space stays in use for the rows added next. */
  private seal(): void {
    if (this.used === 0) return;
    this.sealed.push(this.chunk.subarray(0, this.used));
    this.chunk = this.chunk.subarray(this.used);
    this.used = 0;
  }

  private nextChunk(atLeast: number): void {
    this.seal();
    if (atLeast > CHUNK_BYTES) {
      // A line of more than ~20k characters: a chunk of its own, not kept.
      this.chunk = Buffer.allocUnsafeSlow(atLeast);
      return;
    }
    this.chunk = spareChunks.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
    this.chunks.push(this.chunk);
  }

  private sealedBytes(): number {
    let bytes = 0;
    for (const buffer of this.sealed) bytes += buffer.length;
    return bytes;
  }
}

/** One buffer that each write in turn assembles its rows in: grown when a write needs more, and kept (see CHUNK_BYTES). */
export class InsertBuffer {
  private buffer = Buffer.allocUnsafeSlow(0);

  /** A buffer of at least `bytes` bytes, the same one for every call that fits in it. */
  reserve(bytes: number): Buffer {
    if (this.buffer.length < bytes) this.buffer = Buffer.allocUnsafeSlow(Math.max(bytes, this.buffer.length * 2));
    return this.buffer;
  }
}

/** The rows one write puts in the four tables, and how many history rows of each operation are among them. */
export interface RowBlock {
  history: RowLines;
  current: RowLines;
  apis: RowLines;
  attributions: RowLines;
  historyOperations: Map<string, number>;
  /**
   * The states whose rows these are (a state once per change or repair of it here): once they are written, the
   * tables hold those states, and memory may let go of them (HeldState.written).
   */
  states: AppliedState[];
}

/** The columns of each table that hold JSON text: the history's after-image, and the current state's maps. */
export const JSON_TEXT_COLUMNS = { history: ['after'], current: [...JSON_COLUMNS] } as const;

export const emptyBlock = (): RowBlock => ({
  history: new RowLines(JSON_TEXT_COLUMNS.history),
  current: new RowLines(JSON_TEXT_COLUMNS.current),
  apis: new RowLines(),
  attributions: new RowLines(),
  historyOperations: new Map(),
  states: [],
});

/** Gives a written block's chunks back for reuse (see RowLines.release). */
export function releaseBlock(block: RowBlock): void {
  block.history.release();
  block.current.release();
  block.apis.release();
  block.attributions.release();
}

/** Adds a history row's operation to a block's counts. */
export function countOperation(block: RowBlock, operation: string, count = 1): void {
  block.historyOperations.set(operation, (block.historyOperations.get(operation) ?? 0) + count);
}

/** Moves another block's rows and counts after these (the other must not be used afterwards). */
export function appendBlock(block: RowBlock, other: RowBlock): void {
  block.history.append(other.history);
  block.current.append(other.current);
  block.apis.append(other.apis);
  block.attributions.append(other.attributions);
  for (const [operation, count] of other.historyOperations) countOperation(block, operation, count);
  for (const state of other.states) block.states.push(state);
}

export const blockSize = (block: RowBlock) => block.history.count + block.current.count + block.apis.count + block.attributions.count;
