import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InsertBuffer, RowLines, emptyBlock, releaseBlock, type RowBlock } from '../../services/sink/row-block.js';
import { createWriteBatcher } from '../../services/sink/write-batcher.js';

const row = (arn: string, version: number) => ({ arn, version, after: `{"description":"say \\"hi\\"\\n"}` });

/** A history line as the engine reads it back: the after-image is JSON in the line, not a string. */
const line = (arn: string, version: number) => [arn, version, JSON.parse(row(arn, version).after)];

function blockOf(...rows: ReturnType<typeof row>[]): RowBlock {
  const block = emptyBlock();
  for (const r of rows) block.history.add(r, `${r.arn}@${r.version}`);
  return block;
}

/** What reached the engine: each written block's history lines, parsed back. */
function engine(options: { failFirst?: number; delayMs?: number } = {}) {
  const blocks: unknown[][] = [];
  let failures = options.failFirst ?? 0;
  return {
    blocks,
    write: async (block: RowBlock) => {
      await new Promise((resolve) => setTimeout(resolve, options.delayMs ?? 1));
      if (failures-- > 0) throw new Error('engine refused the insert');
      blocks.push(block.history.bytes().toString('utf8').trimEnd().split('\n').map((line) => JSON.parse(line)));
    },
  };
}

describe('row lines', () => {
  it('serializes rows as JSONCompactEachRow in column order, and appends blocks in order', () => {
    const a = new RowLines();
    a.add(row('a', 1), 'a@1');
    const b = new RowLines();
    b.add(row('b', 2), 'b@2');
    b.add(row('c', 3), 'c@3');
    a.append(b);
    assert.deepEqual(a.columns, ['arn', 'version', 'after']);
    assert.equal(a.count, 3);
    assert.deepEqual(a.ids, ['a@1', 'b@2', 'c@3']);
    assert.equal(a.bytes().toString('utf8'), [
      '["a",1,"{\\"description\\":\\"say \\\\\\"hi\\\\\\"\\\\n\\"}"]',
      '["b",2,"{\\"description\\":\\"say \\\\\\"hi\\\\\\"\\\\n\\"}"]',
      '["c",3,"{\\"description\\":\\"say \\\\\\"hi\\\\\\"\\\\n\\"}"]',
      '',
    ].join('\n'));
  });

  it('writes JSON text columns as the JSON itself, last, and null as null', () => {
    const lines = new RowLines(['after']);
    lines.add(row('a', 1));
    lines.add({ arn: 'b', version: 2, after: null });
    assert.deepEqual(lines.columns, ['arn', 'version', 'after']);
    assert.equal(lines.bytes().toString('utf8'), '["a",1,{"description":"say \\"hi\\"\\n"}]\n["b",2,null]\n');
  });

  it('keeps multi-byte text whole across chunk boundaries', () => {
    const lines = new RowLines();
    const text = 'é€𝄞'.repeat(20_000);
    for (let i = 0; i < 5; i++) lines.add({ i, text });
    const parsed = lines.bytes().toString('utf8').trimEnd().split('\n').map((line) => JSON.parse(line));
    assert.deepEqual(parsed, Array.from({ length: 5 }, (_, i) => [i, text]));
  });

  it('writes new rows whole into chunks that written rows gave back', () => {
    const parse = (lines: RowLines) => lines.bytes().toString('utf8').trimEnd().split('\n').map((text) => JSON.parse(text));
    const template = (n: number) => JSON.stringify({ 'application/json': `{"n":${n},"pad":"${'x'.repeat(3000)}"}` });
    const written = emptyBlock();
    for (let i = 0; i < 200; i++) written.current.add({ i, request_templates: template(i) });
    assert.equal(parse(written.current).length, 200);
    releaseBlock(written);
    // The same chunks, fewer and shorter rows: nothing of the earlier rows may show through.
    const next = new RowLines(['request_templates']);
    for (let i = 0; i < 30; i++) next.add({ i: 1000 + i, request_templates: null });
    assert.deepEqual(parse(next), Array.from({ length: 30 }, (_, i) => [1000 + i, null]));
  });

  it('assembles rows spread over many chunks in one insert buffer, the same bytes as joined, again and again', () => {
    const into = new InsertBuffer();
    for (const rows of [400, 50, 1]) {
      const lines = new RowLines(['after']);
      for (let i = 0; i < rows; i++) lines.add({ arn: `arn-${i}`, version: i, after: JSON.stringify({ pad: 'é'.repeat(500 + i) }) });
      const joined = Buffer.from(lines.bytes());
      const assembled = lines.bytes(into);
      assert.equal(assembled.length, joined.length);
      assert.ok(assembled.equals(joined), `${rows} rows`);
    }
  });

  it('refuses to append rows of other columns', () => {
    const a = new RowLines();
    a.add({ x: 1 });
    const b = new RowLines();
    b.add({ y: 1 });
    assert.throws(() => a.append(b), /columns/);
  });
});

describe('write batcher', () => {
  it('gathers rows added while a write runs into the next block, in order', async () => {
    const target = engine({ delayMs: 20 });
    const batcher = createWriteBatcher(target.write);
    const first = batcher.add(blockOf(row('a', 1)));
    const second = batcher.add(blockOf(row('b', 1)));
    const third = batcher.add(blockOf(row('c', 1)));
    await Promise.all([first, second, third]);
    assert.deepEqual(target.blocks, [[line('a', 1)], [line('b', 1), line('c', 1)]]);
  });

  it('writes a small block at once after a quiet spell, then at most one per linger, unless someone waits for it', async () => {
    const target = engine();
    // Margins far wider than a loaded machine's timer jitter: at once means well before the linger ends.
    const batcher = createWriteBatcher(target.write, { minRows: 100, lingerMs: 400 });
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    await batcher.add(blockOf(row('a', 1)));
    assert.equal(target.blocks.length, 1, 'the first block is not held back');

    const lingering = batcher.add(blockOf(row('b', 1)));
    await sleep(150);
    assert.equal(target.blocks.length, 1, 'not written within the linger after the last write');
    await lingering;
    assert.equal(target.blocks.length, 2);

    await sleep(450);
    const afterQuiet = batcher.add(blockOf(row('c', 1)));
    await sleep(150);
    assert.equal(target.blocks.length, 3, 'written at once after a quiet spell as long as the linger');
    await afterQuiet;

    batcher.add(blockOf(row('d', 1)));
    await batcher.durable();
    assert.equal(target.blocks.length, 4, 'durable() writes at once');
    assert.deepEqual(target.blocks, [[line('a', 1)], [line('b', 1)], [line('c', 1)], [line('d', 1)]]);
  });

  it('fails every caller of a failed write, drops what gathered behind it, and writes again after reset', async () => {
    const target = engine({ failFirst: 1, delayMs: 10 });
    const batcher = createWriteBatcher(target.write);
    const failed = batcher.add(blockOf(row('a', 1)));
    const behind = batcher.add(blockOf(row('b', 1)));
    await assert.rejects(failed, /refused/);
    await assert.rejects(behind, /refused/);
    await assert.rejects(batcher.written(), /refused/);
    await batcher.idle();
    assert.deepEqual(target.blocks, [], 'nothing reached the engine');
    batcher.reset();
    await batcher.add(blockOf(row('a', 1)));
    assert.deepEqual(target.blocks, [[line('a', 1)]]);
  });
});
