import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CONFIG_VARIABLES } from '../../services/shared/config.js';
import { PROJECT_ROOT } from '../../stack/layout.js';
import { apigwStream } from '../support/cli.js';

const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };

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
});
