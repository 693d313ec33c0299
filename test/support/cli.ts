import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../stack/layout.js';

const EXECUTABLE = join(PROJECT_ROOT, 'bin/apigw-stream.js');

/**
 * Runs the real executable, the way a user does, and returns its exit code and output. Asynchronous, so that a
 * query API served by the test's own process can answer it.
 */
export function apigwStream(
  args: string[], env: NodeJS.ProcessEnv, { cwd, timeoutMs = 60_000 }: { cwd?: string; timeoutMs?: number } = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [EXECUTABLE, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => child.once('close', (status) => {
    clearTimeout(timer);
    resolve({ status, stdout: stdout.trim(), stderr: stderr.trim() });
  }));
}

/**
 * Starts the real executable as a long-running service (`run`, `sink`) with `env` as it is; its log (stderr) is
 * kept, and `exited` settles with its exit code. `withLog` rethrows an error with the end of that log, for failures.
 */
export function startApigwStream(args: string[], env: NodeJS.ProcessEnv, { cwd }: { cwd?: string } = {}) {
  const child = spawn(process.execPath, [EXECUTABLE, ...args], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => { log += chunk.toString(); });
  const withLog = (error: Error): never => { throw new Error(`${error.message}; ${args[0]}'s log: ${log.slice(-1500)}`); };
  return { child, exited: new Promise<number | null>((resolve) => child.once('exit', resolve)), log: () => log, withLog };
}

/** The warning, error and fatal lines of a service's log: none, when nothing was refused or failed under it. */
export function complaints(log: string): string[] {
  return log.split('\n').filter((line) => /"level":(40|50|60)/.test(line));
}

/** Each live integration's timeout, as `query current` answers; undefined while nothing answers. */
export async function currentTimeouts(env: NodeJS.ProcessEnv): Promise<Map<string, number | null> | undefined> {
  const result = await apigwStream(['query', 'current', '--format', 'json'], env);
  if (result.status !== 0) return undefined;
  return new Map((JSON.parse(result.stdout) as { arn: string; timeout_in_millis: number | null }[]).map((row) => [row.arn, row.timeout_in_millis]));
}

/** `apigw-stream query ARGS --format json`, which must exit 0, parsed. */
export async function queryJson<T>(args: string[], env: NodeJS.ProcessEnv): Promise<T> {
  const result = await apigwStream(['query', ...args, '--format', 'json'], env);
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as T;
}

/** Runs `apigw-stream tail ARGS` until it has printed `count` JSON lines, stops it, and returns them parsed. */
export async function tailJson<T>(args: string[], env: NodeJS.ProcessEnv, count: number): Promise<T[]> {
  const child = spawn(process.execPath, [EXECUTABLE, 'tail', '--json', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: T[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        lines.push(JSON.parse(line) as T);
        if (lines.length === count) resolve();
      });
      child.once('exit', (code) => reject(new Error(`tail exited with ${code}`)));
    });
  } finally {
    child.kill('SIGTERM');
  }
  return lines;
}
