import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../stack/layout.js';

/**
 * Starts the test ClickHouse server (clickhouse-server.ts: the real engine behind the HTTP interface) in a process of
 * its own, on `port` (a free one by default), with its data in `dataDir`; resolves once it answers. `insertDelayMs`
 * holds every insert back that long; with `user`, it takes only that user and password; with `tls` (PEM files), it
 * speaks https.
 */
export async function startClickHouseServer(dataDir: string, { insertDelayMs = 0, port = 0, user, tls }: {
  insertDelayMs?: number; port?: number; user?: { name: string; password: string }; tls?: { keyFile: string; certFile: string };
} = {}): Promise<{ server: ChildProcess; url: string; port: number }> {
  const server = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'test/support/clickhouse-server.ts'), dataDir, String(port), String(insertDelayMs)], {
    cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      ...(user ? { CLICKHOUSE_TEST_USER: user.name, CLICKHOUSE_TEST_PASSWORD: user.password } : {}),
      ...(tls ? { CLICKHOUSE_TEST_TLS_KEY: tls.keyFile, CLICKHOUSE_TEST_TLS_CERT: tls.certFile } : {}),
    },
  });
  const listening = await new Promise<string>((resolve, reject) => {
    createInterface({ input: server.stdout! }).on('line', (line) => {
      const said = /^listening (\d+)$/.exec(line);
      if (said) resolve(said[1]!);
    });
    server.once('exit', (code) => reject(new Error(`the test ClickHouse server exited with ${code}`)));
  });
  return { server, url: `${tls ? 'https' : 'http'}://127.0.0.1:${listening}`, port: Number(listening) };
}

/** Stops the test ClickHouse server and waits until it has closed its engine. */
export async function stopClickHouseServer(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  await exited;
}
