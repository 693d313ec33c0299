import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { realPathOf } from '../shared/engine-directory.js';
import { isAlive } from '../shared/process-alive.js';

/**
 * The embedded engine lets one process open a data directory. The process that holds it announces its query
 * API in a file beside the directory, so that `apigw-stream query` can ask it instead. Named by the directory's real
 * path: a query that reaches it through a symbolic link finds the announcement.
 */
export function endpointFileOf(chdbPath: string): string {
  return `${realPathOf(chdbPath)}.query-endpoint.json`;
}

export function announceEndpoint(chdbPath: string, url: string): () => void {
  const file = endpointFileOf(chdbPath);
  writeFileSync(file, JSON.stringify({ url, pid: process.pid }));
  return () => rmSync(file, { force: true });
}

/** The announced URL, when the announcing process is still alive. */
export function findEndpoint(chdbPath: string): string | undefined {
  const file = endpointFileOf(chdbPath);
  if (!existsSync(file)) return undefined;
  try {
    const { url, pid } = JSON.parse(readFileSync(file, 'utf8')) as { url: string; pid: number };
    return isAlive(pid) ? url : undefined;
  } catch {
    return undefined;
  }
}
