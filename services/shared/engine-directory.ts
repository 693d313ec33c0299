import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ApigwError } from './errors.js';
import { isAlive } from './process-alive.js';

/** Another process has the embedded engine's data directory open: one process at a time may (retriable: it may let go). */
export class DirectoryHeldError extends ApigwError {
  constructor(readonly path: string, readonly holder: { pid: number; command: string }) {
    super(`process ${holder.pid}${holder.command ? ` (${holder.command})` : ''} holds it`, { retriable: true, context: { path, pid: holder.pid } });
  }
}

/**
 * `path` with every symbolic link in it resolved, the way a process's open files are named; absolute but as given
 * while it does not exist.
 */
export function realPathOf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/**
 * The process other than this one that holds the engine directory `path`, if one does. A running engine keeps the
 * directory's `status` file open and locked, with its pid written in it (a crashed one leaves the file behind).
 */
export function directoryHolder(path: string): { pid: number; command: string } | undefined {
  const statusFile = join(realPathOf(path), 'status');
  let status: string;
  try {
    status = readFileSync(statusFile, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(/^PID: (\d+)/m.exec(status)?.[1]);
  if (!pid || pid === process.pid || !holdsFile(pid, statusFile)) return undefined;
  return { pid, command: commandOf(pid) };
}

/**
 * Whether `pid` has `file` open; where its descriptors cannot be read (another user's process, or no /proc as on
 * macOS), whether it is alive.
 */
function holdsFile(pid: number, file: string): boolean {
  let descriptors: string[];
  try {
    descriptors = readdirSync(`/proc/${pid}/fd`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return (code === 'EACCES' || code === 'EPERM' || !existsSync('/proc/self/fd')) && isAlive(pid);
  }
  return descriptors.some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === file;
    } catch {
      return false;
    }
  });
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}
