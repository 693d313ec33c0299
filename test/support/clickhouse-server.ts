/**
 * A ClickHouse server for tests: the real engine (chDB) behind ClickHouse's HTTP interface, as much of it as
 * `@clickhouse/client` uses: `/ping`; a query in the body, or in `query` with the body as its data (an insert);
 * `database`, `default_format`, `param_*` query parameters and settings in the URL; a multipart/form-data body of
 * the query and its `param_*` parameters; errors as the server writes them (status 500, `Code: N. DB::Exception: …`).
 * It takes 8 KiB of request line and headers, as a proxy in front of a server does (nginx's default): a server
 * itself takes URLs of up to 1 MiB. No ClickHouse server binary of a version that reads our DDL is in the
 * registries this project installs from, and the sink's server mode (several instances sharing the tables, batches
 * that end only once written) is otherwise untested.
 *
 * Run as a process of its own (the engine holds one directory per process):
 * `node --import tsx test/support/clickhouse-server.ts <data directory> <port, 0: any free one> [insert delay in ms]`;
 * it prints `listening <port>` once it answers (see clickhouse-server-process.ts). Requests run one at a time: each sets its own settings and parameters on the one
 * session, and resets them after. The delay holds every insert back, as a busy server does: long enough, a write
 * is still running when the partitions it came from are assigned to another sink. With CLICKHOUSE_TEST_USER and
 * CLICKHOUSE_TEST_PASSWORD set, it refuses other credentials as a server does: 403, `Code: 516` (AUTHENTICATION_FAILED),
 * everywhere but `/ping`. With CLICKHOUSE_TEST_TLS_KEY and CLICKHOUSE_TEST_TLS_CERT (PEM files), it speaks https.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Session } from 'chdb';

/** URL parameters of the HTTP interface that are not settings. */
const NOT_SETTINGS = new Set([
  'query', 'database', 'default_format', 'query_id', 'session_id', 'session_timeout', 'session_check', 'compress',
  'decompress', 'user', 'password', 'quota_key', 'enable_http_compression', 'wait_end_of_query',
  'send_progress_in_http_headers', 'http_headers_progress_interval_ms', 'role',
]);

/** A ClickHouse string literal holding `text` exactly. */
const literal = (text: string) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;

const [dataDir, port, insertDelayMs = '0'] = process.argv.slice(2);
if (!dataDir || !port) throw new Error('usage: clickhouse-server.ts <data directory> <port> [insert delay in ms]');
const session = new Session(dataDir);

/** The request's statement, and its query parameters when the body is a form (the statement its `query` part). */
async function readStatement(request: IncomingMessage): Promise<{ text: string; params: [string, string][] }> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const type = request.headers['content-type'] ?? '';
  if (!type.startsWith('multipart/form-data')) return { text: Buffer.concat(chunks).toString('utf8'), params: [] };
  const form = await new Response(Buffer.concat(chunks), { headers: { 'content-type': type } }).formData();
  const params = [...form].flatMap(([name, value]) => (name.startsWith('param_') ? [[name, String(value)] as [string, string]] : []));
  return { text: String(form.get('query') ?? ''), params };
}

/** Runs one request's statement with its settings and parameters; returns its output. */
async function execute(url: URL, { text, params }: { text: string; params: [string, string][] }): Promise<Uint8Array> {
  const query = url.searchParams.get('query');
  const statement = query === null ? text : `${query}\n${text}`;
  const prefix: string[] = [`USE ${url.searchParams.get('database') ?? 'default'}`];
  const settings: string[] = [];
  for (const [name, value] of [...url.searchParams, ...params]) {
    const setting = name.startsWith('param_') ? name : NOT_SETTINGS.has(name) ? undefined : name;
    if (setting === undefined) continue;
    if (!identifier.test(setting)) throw new Error(`Code: 115. DB::Exception: Unknown setting ${setting}. (UNKNOWN_SETTING)`);
    prefix.push(`SET ${setting} = ${literal(value)}`);
    if (!name.startsWith('param_')) settings.push(setting);
  }
  try {
    const result = await session.queryAsync(`${prefix.join('; ')}; ${statement}`, { format: url.searchParams.get('default_format') ?? 'TabSeparated' });
    return result.bytes();
  } finally {
    // A setting the statement refused was never set: its reset fails the same way, and changes nothing.
    if (settings.length > 0) await session.queryAsync(settings.map((name) => `SET ${name} = DEFAULT`).join("; ")).catch(() => undefined);
  }
}

let queue: Promise<unknown> = Promise.resolve();

/** An error as the server writes it: the exception's text, its code in a header too. */
function refuse(response: ServerResponse, status: number, exception: string): void {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=UTF-8', 'X-ClickHouse-Exception-Code': /Code: (\d+)/.exec(exception)![1]! });
  response.end(exception);
}

const { CLICKHOUSE_TEST_USER: requiredUser, CLICKHOUSE_TEST_PASSWORD: requiredPassword = '' } = process.env;

/** The user the request names (HTTP basic credentials, as `@clickhouse/client` sends them), or 'default'. */
function credentials(request: IncomingMessage): { user: string; password: string } {
  const basic = /^Basic (.+)$/.exec(request.headers.authorization ?? '');
  if (!basic) return { user: 'default', password: '' };
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

async function answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://localhost');
  if (url.pathname === '/ping') {
    response.end('Ok.\n');
    return;
  }
  const sent = await readStatement(request);
  const { user, password } = credentials(request);
  if (requiredUser !== undefined && (user !== requiredUser || password !== requiredPassword)) {
    refuse(response, 403, `Code: 516. DB::Exception: ${user}: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)`);
    return;
  }
  // Held back before it takes its turn: what other requests read meanwhile does not hold it yet.
  if (/^\s*INSERT\b/i.test(url.searchParams.get('query') ?? sent.text)) await sleep(Number(insertDelayMs));
  const run = queue.then(() => execute(url, sent));
  queue = run.catch(() => undefined);
  try {
    const output = await run;
    response.writeHead(200, { 'Content-Type': 'text/plain; charset=UTF-8', 'X-ClickHouse-Summary': '{}' });
    response.end(output);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    refuse(response, 500, message.startsWith('Code:') ? message : `Code: 1001. DB::Exception: ${message}`);
  }
}

const handle = (request: IncomingMessage, response: ServerResponse) => {
  answer(request, response).catch((error: unknown) => {
    response.destroy(error instanceof Error ? error : new Error(String(error)));
  });
};
const { CLICKHOUSE_TEST_TLS_KEY: tlsKey, CLICKHOUSE_TEST_TLS_CERT: tlsCert } = process.env;
// Past it, node answers 431 with no body, as nginx answers 414 or 400.
const limits = { maxHeaderSize: 8 * 1024 };
const server = tlsKey && tlsCert
  ? createTlsServer({ key: readFileSync(tlsKey), cert: readFileSync(tlsCert), ...limits }, handle)
  : createServer(limits, handle);
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`));
// Clients keep their connections open between requests: a server that stops drops them, as a restarting one does.
const close = () => {
  server.close(() => {
    session.close();
    process.exit(0);
  });
  server.closeAllConnections();
};
process.on('SIGTERM', close);
process.on('SIGINT', close);
