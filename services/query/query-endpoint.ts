import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { realPathOf } from '../shared/engine-directory.js';
import { isAlive } from '../shared/process-alive.js';
import { VERSION } from '../shared/version.js';

/**
 * The embedded engine lets one process open a data directory. The process that holds it announces its query
 * API in a file beside the directory, so that `apigw-stream query` can ask it instead. Named by the directory's real
 * path: a query that reaches it through a symbolic link finds the announcement.
 */
export function endpointFileOf(chdbPath: string): string {
  return `${realPathOf(chdbPath)}.query-endpoint.json`;
}

/** A query API announced by the process holding a data directory, and the release that process runs. */
export interface Endpoint {
  url: string;
  pid: number;
  /** Absent: announced by a release from before the version was announced. */
  version?: string;
}

export function announceEndpoint(chdbPath: string, url: string): () => void {
  const file = endpointFileOf(chdbPath);
  writeFileSync(file, JSON.stringify({ url, pid: process.pid, version: VERSION } satisfies Endpoint));
  return () => rmSync(file, { force: true });
}

/** The announced query API, when the announcing process is still alive. */
export function findEndpoint(chdbPath: string): Endpoint | undefined {
  const file = endpointFileOf(chdbPath);
  if (!existsSync(file)) return undefined;
  try {
    const endpoint = JSON.parse(readFileSync(file, 'utf8')) as Endpoint;
    return isAlive(endpoint.pid) ? endpoint : undefined;
  } catch {
    return undefined;
  }
}
