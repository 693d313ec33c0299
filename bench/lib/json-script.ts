/** Bench scripts run in processes of their own, each reporting its figures as the last line of JSON it prints. */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { PROJECT_ROOT } from '../../stack/layout.js';

export type ScriptProcess = ChildProcessByStdio<Writable, Readable, Readable>;

/**
 * Runs `script` (a path under bench/) with `env` added and returns its last line of JSON; throws with the end of
 * its stderr when it fails. `started` sees the process as soon as it runs, e.g. to sample it or to talk to it.
 */
export async function runJsonScript<T>(script: string, env: NodeJS.ProcessEnv, started?: (child: ScriptProcess) => void): Promise<T> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'bench', script)], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  started?.(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (exitCode !== 0) throw new Error(`bench/${script} failed: ${stderr.slice(-2000)}`);
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}
