import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenOn } from '../shared/local-port.js';
import type { Logger } from '../shared/logger.js';
import type { DriftQueries, InventoryFilter } from './drift-queries.js';
import { COUNT_EXPECTED, QueryInputError, isCount, parseTimeInput } from './time-input.js';

/**
 * The read-only JSON API over the drift queries, for processes that cannot open the embedded engine themselves. The
 * port is taken first, before the process writes anything (a port in use stops it there); it answers once `serve`
 * hands it the queries.
 */
export async function listenForQueries({ port = 0, logger }: { port?: number; logger: Logger }): Promise<{ url: string; serve: (queries: DriftQueries) => void; close: () => Promise<void> }> {
  const log = logger.child({ component: 'query-server' });
  let queries: DriftQueries | undefined;

  async function answer(queries: DriftQueries, path: string, params: URLSearchParams): Promise<unknown> {
    const filter: InventoryFilter = {
      account: params.get('account') ?? undefined,
      region: params.get('region') ?? undefined,
      api: params.get('api') ?? undefined,
      type: params.get('type') ?? undefined,
    };
    const time = (name: string, fallback?: string) => parseTimeInput(name, params.get(name) ?? fallback ?? '');
    switch (path) {
      case '/v1/current': return queries.current(filter);
      case '/v1/as-of': return queries.asOf(time('at'), filter);
      case '/v1/history': return queries.history(params.get('id') ?? '');
      case '/v1/diff': return queries.diff(time('from'), time('to', 'now'), filter);
      case '/v1/changes': {
        const limit = Number(params.get('limit'));
        if (!isCount(limit)) throw new QueryInputError(String(limit), `limit: ${COUNT_EXPECTED}, got "${params.get('limit')}"`);
        return queries.changes(time('since', '1970-01-01'), time('until', 'now'), { ...filter, principal: params.get('principal') ?? undefined }, limit);
      }
      case '/v1/who': return queries.who(time('since', '1970-01-01'), time('until', 'now'), filter);
      default: throw new QueryInputError(path, `no such query: ${path}`);
    }
  }

  const server: Server = createServer((request, response) => {
    // Not announced before `serve`: only a client guessing the port gets here.
    if (!queries) {
      response.writeHead(503, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: 'not serving queries yet' }));
      return;
    }
    const url = new URL(request.url ?? '/', 'http://localhost');
    answer(queries, url.pathname, url.searchParams).then(
      (body) => response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body)),
      (error: Error) => {
        const status = error instanceof QueryInputError ? 400 : 500;
        if (status === 500) log.error({ err: error, path: url.pathname }, 'query failed');
        response.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: error.message }));
      },
    );
  });
  // Loopback only: it answers anyone who reaches it, with the tables' contents.
  await listenOn(server, { host: '127.0.0.1', port }, { port: 'APIGW_QUERY_PORT' });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    serve: (served) => {
      queries = served;
      log.info({ url }, 'serving drift queries');
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The same questions asked of a process that serves them. */
export function queriesOver(url: string): DriftQueries {
  async function get<T>(path: string, params: Record<string, string | number | undefined>): Promise<T> {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => [k, String(v)]));
    const response = await fetch(`${url}${path}?${query}`);
    const body = (await response.json()) as T & { error?: string };
    if (!response.ok) throw response.status === 400 ? new QueryInputError('', body.error ?? 'bad query') : new Error(body.error ?? `HTTP ${response.status}`);
    return body;
  }
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    current: (filter = {}) => get('/v1/current', { ...filter }),
    asOf: (at, filter = {}) => get('/v1/as-of', { at: iso(at), ...filter }),
    history: (id) => get('/v1/history', { id }),
    diff: (from, to, filter = {}) => get('/v1/diff', { from: iso(from), to: iso(to), ...filter }),
    changes: (since, until, filter, limit) => get('/v1/changes', { since: iso(since), until: iso(until), ...filter, limit }),
    who: (since, until, filter = {}) => get('/v1/who', { since: iso(since), until: iso(until), ...filter }),
  };
}
