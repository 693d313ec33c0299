/**
 * `npm test`: starts (or reuses) the local real stack, runs every test file with node's test runner, and stops
 * only the parts of the stack that this run started.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stackDown, stackUp } from '../stack/index.js';
import { STACK_DIR } from '../stack/layout.js';

const say = (line: string) => process.stdout.write(`stack: ${line}\n`);
const here = fileURLToPath(new URL('.', import.meta.url));
const files = ['unit', 'integration'].flatMap((dir) =>
  readdirSync(join(here, dir)).filter((name) => name.endsWith('.test.ts')).sort().map((name) => join(here, dir, name)));

const started = await stackUp(say);
const tapFile = join(STACK_DIR, 'test-results.tap');
// Each file gets at most this long, its process included: a file whose process outlives its tests (a child or a
// timer left running) fails by name instead of holding CI until someone kills it. The longest file takes ~40 s.
const FILE_TIMEOUT_MS = 300_000;
const result = spawnSync(process.execPath, [
  '--import', 'tsx', '--test', '--test-concurrency=1', `--test-timeout=${FILE_TIMEOUT_MS}`,
  '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tapFile}`,
  ...files,
], {
  stdio: 'inherit',
  env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
});
// The benchmark suite at its quick size, once, to prove it still runs (it asserts no timing).
process.stdout.write('\nbenchmarks (quick size):\n');
const bench = spawnSync(process.execPath, ['--import', 'tsx', join(here, '../bench/run.ts'), '--quick'], {
  stdio: 'inherit',
  env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
});
if (bench.status !== 0) process.stdout.write(`the benchmark suite failed to run (exit ${bench.status})\n`);
if (started.length > 0) await stackDown(say, started);
// The closing line, after the benchmark table and the stack's output.
const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
process.stdout.write(`\ntests: ${count('pass')} passed, ${count('fail')} failed\n`);
process.exit(result.status !== 0 ? (result.status ?? 1) : (bench.status ?? 1));
