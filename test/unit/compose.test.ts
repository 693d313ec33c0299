import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../services/shared/config.js';

// No Docker engine runs it here: what can be checked without one is that it says what the program understands.
const compose = parseYaml(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8'), { merge: true }) as {
  services: Record<string, { command?: string; environment?: Record<string, string>; healthcheck?: { test: string[] } }>;
};
/** Read by the AWS SDK itself, not by the configuration. */
const SDK_VARIABLES = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'];
/** `${NAME:-default}` as compose expands it with NAME unset. */
const withDefaults = (environment: Record<string, string>) =>
  Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, String(value).replace(/\$\{\w+:-([^}]*)\}/g, '$1')]));

describe('docker-compose.yml', () => {
  const services = Object.entries(compose.services).filter(([, service]) => service.command?.startsWith('bin/apigw-stream.js'));

  it('runs the three services, each a command of the program', () => {
    assert.deepEqual(services.map(([, service]) => service.command!.split(' ')[1]).sort(), ['listen', 'sink', 'snapshot']);
  });

  for (const [name, service] of services) {
    it(`${name}: sets only variables the program reads, to values its configuration accepts, and checks /healthz where it serves it`, () => {
      const environment = withDefaults(service.environment ?? {});
      assert.deepEqual(Object.keys(environment).filter((variable) => !CONFIG_VARIABLES.includes(variable) && !SDK_VARIABLES.includes(variable)), []);
      const config = loadConfig(environment);
      assert.match(service.healthcheck!.test.join(' '), new RegExp(`http://127\\.0\\.0\\.1:${config.metrics!.port}/healthz`));
    });
  }
});
