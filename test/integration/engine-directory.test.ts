import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openClickHouse } from '../../services/shared/clickhouse.js';
import { STACK_DIR } from '../../stack/layout.js';
import { resetEmulator, seedSampleInventory } from '../../stack/sample-inventory.js';
import { apigwStream, startApigwStream } from '../support/cli.js';
import { columnsOf, emulatorInventory } from '../support/emulator-state.js';
import { awsClient, motoEndpoint, testEnvironment, uniqueName, waitFor } from '../support/harness.js';

const REGION = 'eu-north-1';
const aws = awsClient(REGION);

// chDB reads config.xml from the directory a process runs in: a ClickHouse server's config there names its own data
// directory, and a Maven or IDE project's is no ClickHouse config at all.
describe('the embedded engine keeps its tables where CLICKHOUSE_URL says, whatever directory the command runs in', { timeout: 180_000 }, () => {
  let env: ReturnType<typeof testEnvironment>;
  const workDir = join(STACK_DIR, 'test-data', uniqueName('cwd'));
  const elsewhere = join(workDir, 'server-data');
  before(async () => {
    await resetEmulator(motoEndpoint);
    await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'cwd' });
    env = testEnvironment({ region: REGION });
    mkdirSync(workDir, { recursive: true });
    writeFileSync(join(workDir, 'config.xml'), `<clickhouse><path>${elsewhere}/</path></clickhouse>\n`);
  });
  after(async () => {
    aws.destroy();
    await env?.cleanup();
    rmSync(workDir, { recursive: true, force: true });
  });

  it('run, started beside a ClickHouse server\'s config.xml, writes into its own directory; a query reads it beside a broken one', async () => {
    const { child: run, exited, log, withLog } = startApigwStream(['run'], env.env, { cwd: workDir });
    const expected = await emulatorInventory(aws, REGION);
    const current = (cwd?: string) => apigwStream(['query', 'current', '--format', 'json'], env.env, { cwd });
    try {
      await waitFor('`query current` to show the snapshot', async () => {
        const result = await current();
        return result.status === 0 && (JSON.parse(result.stdout) as unknown[]).length === expected.size;
      }, 90_000)
        .catch(withLog);
    } finally {
      run.kill('SIGTERM');
    }
    assert.equal(await exited, 0, `run exits 0 on SIGTERM; its log:\n${log().slice(-2000)}`);
    // With run stopped, the query opens CLICKHOUSE_URL's directory itself, beside a config.xml that is no XML at all.
    writeFileSync(join(workDir, 'config.xml'), '<project><modelVersion>4.0.0\n');
    const result = await current(workDir);
    assert.equal(result.status, 0, `the engine starts and finds the tables in CLICKHOUSE_URL's directory: ${result.stderr}`);
    const answer = JSON.parse(result.stdout) as Record<string, unknown>[];
    assert.deepEqual(new Map(answer.map((row) => [String(row.arn), columnsOf(row)])), expected);
    assert.equal(existsSync(elsewhere), false, 'nothing is written where the config.xml points');
  });

  it('sink, on a directory another process holds (named through a symbolic link), stops with one line naming that process', async () => {
    const held = join(workDir, 'held');
    const link = join(workDir, 'held-link');
    const holder = await openClickHouse({ kind: 'chdb', path: held });
    symlinkSync(held, link);
    try {
      const result = await apigwStream(['sink'], { ...env.env, CLICKHOUSE_URL: `chdb://${link}` });
      assert.equal(result.status, 3, result.stderr);
      const [line, ...more] = result.stderr.split('\n');
      assert.deepEqual(more, [], `one line on stderr, got:\n${result.stderr}`);
      assert.ok(line!.startsWith(`apigw-stream: CLICKHOUSE_URL: cannot open the embedded ClickHouse directory ${link}: process ${process.pid} (`), line);
      assert.ok(line!.endsWith(`${process.argv[1]}) holds it`), line);
    } finally {
      await holder.close();
    }
  });
});
