import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { isAlive } from '../services/shared/process-alive.js';
import { sleep } from '../services/shared/retry.js';

/** Runs a command to completion, failing with its output when it exits non-zero. */
export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const result = spawnSync(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`${command} could not run: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${(result.stderr || result.stdout).slice(-3000)}`);
}

/** Starts a server that outlives this process; its output goes to logFile and its pid to pidFile. */
export function startDetached(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; logFile: string; pidFile: string }): number {
  mkdirSync(dirname(options.logFile), { recursive: true });
  const out = openSync(options.logFile, 'a');
  const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, detached: true, stdio: ['ignore', out, out] });
  child.unref();
  writeFileSync(options.pidFile, String(child.pid));
  return child.pid!;
}

export function readPid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Stops the process group of a pid file (SIGTERM, then SIGKILL after the grace period) and removes the file. */
export async function stopPidFile(pidFile: string, graceMs = 15_000): Promise<boolean> {
  const pid = readPid(pidFile);
  rmSync(pidFile, { force: true });
  if (!pid || !isAlive(pid)) return false;
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-pid, name);
    } catch {
      try { process.kill(pid, name); } catch { /* already gone */ }
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(200);
  if (isAlive(pid)) signal('SIGKILL');
  return true;
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.setTimeout(1000);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
    socket.once('error', () => resolve(false));
  });
}

export async function httpOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return response.ok;
  } catch {
    return false;
  }
}

/** Polls until `check` answers true; throws with the tail of the log when the process died or time ran out. */
export async function waitUntil(what: string, check: () => Promise<boolean>, options: { timeoutMs: number; pid?: number; logFile?: string }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (options.pid && !isAlive(options.pid)) throw new Error(`${what} exited during start-up${logTail(options.logFile)}`);
    await sleep(500);
  }
  throw new Error(`${what} did not answer within ${options.timeoutMs / 1000} s${logTail(options.logFile)}`);
}

/**
 * The log's last lines, after its last message on the first line (what a command's one-line error shows): the last
 * line that is not a stack frame or its continuation.
 */
function logTail(logFile?: string): string {
  if (!logFile || !existsSync(logFile)) return '';
  const lines = readFileSync(logFile, 'utf8').split('\n');
  const message = lines.filter((line) => line.trim() !== '' && !/^\s|^at /.test(line)).at(-1);
  return `${message ? `: ${message.slice(0, 400)}` : ''} (log ${logFile}); its last lines:\n${lines.slice(-15).join('\n')}`;
}
