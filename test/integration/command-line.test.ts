import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CONFIG_VARIABLES } from '../../services/shared/config.js';
import { PROJECT_ROOT } from '../../stack/layout.js';
import { apigwStream } from '../support/cli.js';

const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
/** The running stack's own ports, whatever they are. */
const stackPorts = Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('APIGW_STACK_')));

describe('the command line explains itself', () => {
  it('--version prints the release and exits 0', async () => {
    const result = await apigwStream(['--version'], {});
    assert.equal(result.status, 0);
    assert.equal(result.stdout, version);
  });

  it('--help names every command and the configuration variables', async () => {
    const result = await apigwStream(['--help'], {});
    assert.equal(result.status, 0);
    for (const command of ['snapshot', 'listen', 'sink', 'run', 'demo', 'stack', 'tail', 'query', 'accounts', 'redrive']) {
      assert.match(result.stdout, new RegExp(`^  ${command}\\b`, 'm'), `--help lists ${command}`);
    }
    // Every variable the configuration reads but a test's fault injection.
    const documented = CONFIG_VARIABLES.filter((variable) => variable !== 'APIGW_LISTENER_COMMIT_DELAY_MS');
    const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
    for (const variable of documented) {
      assert.match(result.stdout, new RegExp(`^  ${variable} `, 'm'), `--help explains ${variable}`);
      assert.ok(readme.includes(`| \`${variable}\` |`), `the README's configuration table has ${variable}`);
    }
  });

  it('sink --help says what the sink does when something fails, what it holds, and how it stops', async () => {
    const result = await apigwStream(['sink', '--help'], {});
    assert.equal(result.status, 0);
    for (const said of ['<APIGW_TOPIC>.dlq', 'apigw-stream redrive', 'APIGW_SINK_WRITE_RETRIES', 'APIGW_SINK_HELD_INTEGRATIONS', 'APIGW_METRICS_PORT', 'SIGTERM']) {
      assert.ok(result.stdout.includes(said), `sink --help mentions ${said}:\n${result.stdout}`);
    }
  });

  it('a command line it cannot take is bad input: one line saying why, exit 2', async () => {
    for (const [args, said] of [
      [['query', 'current', '--format', 'xml'], "error: option '--format <format>' argument 'xml' is invalid. Allowed choices are table, json, csv."],
      [['query', 'diff'], "error: required option '--from <time>' not specified"],
      [['query', 'changes', '--limit', '0'], "error: option '--limit <count>' argument '0' is invalid. expected a whole number, at least 1."],
    ] as const) {
      const result = await apigwStream([...args], {});
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stderr, said);
    }
  });

  it('a misspelled setting is named as the command starts, with the one it likely stands for', async () => {
    const result = await apigwStream(['stack', 'status'], { ...stackPorts, APIGW_SNAPSHOT_INTERVAL: '60' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr,
      'apigw-stream: warning: APIGW_SNAPSHOT_INTERVAL is not a setting of apigw-stream and is ignored (did you mean APIGW_SNAPSHOT_INTERVAL_SECONDS?)');
  });

  it('stack up on a port another program holds stops with one line naming it, and stops nothing', async () => {
    const squatter = createServer((_request, response) => response.writeHead(404).end());
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const { port } = squatter.address() as AddressInfo;
    try {
      // Its other parts answer, and are left as they are.
      const result = await apigwStream(['stack', 'up'], { ...stackPorts, APIGW_STACK_MOTO_PORT: String(port) });
      assert.equal(result.status, 1, result.stderr);
      const lines = result.stderr.split('\n');
      assert.ok(lines.slice(0, -1).every((line) => line.includes('already answering')), result.stderr);
      assert.match(lines.at(-1)!, new RegExp(`^apigw-stream: moto: port ${port} is in use by another program, which does not answer as moto`));
    } finally {
      squatter.close();
    }
    const status = await apigwStream(['stack', 'status'], stackPorts);
    assert.equal(status.status, 0, `every part of the running stack still answers:\n${status.stdout}`);
  });
});

