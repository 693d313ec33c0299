import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { applySchema, openClickHouse } from '../../services/shared/clickhouse.js';
import { STACK_DIR } from '../../stack/layout.js';
import { STACK_MSK_IAM, STACK_SASL_USER } from '../../stack/parts.js';
import { apigwStream } from '../support/cli.js';
import { startClickHouseServer, stopClickHouseServer } from '../support/clickhouse-server-process.js';
import { assumeRoleDenied, startFaultProxy, type Fault } from '../support/fault-proxy.js';
import { brokers, motoEndpoint, plainKafka, registrySubjects, registryUrl, saslBrokers, tlsBrokers, uniqueName } from '../support/harness.js';

async function topicExists(topic: string): Promise<boolean> {
  const admin = plainKafka().admin();
  await admin.connect();
  const topics = await admin.listTopics();
  await admin.disconnect();
  return topics.includes(topic);
}

// A ClickHouse server that takes one user's credentials, and refuses others (except at /ping, as a server does).
const clickHouseServerDir = join(STACK_DIR, 'test-data', uniqueName('badconf-server'));
const { server: clickHouseServer, port: clickHousePort } = await startClickHouseServer(clickHouseServerDir, { user: { name: 'apigw', password: 'the-password' } });

// A home with no AWS configuration in it, for a start that finds no AWS credentials at all.
const emptyHome = join(STACK_DIR, 'test-data', uniqueName('badconf-home'));
mkdirSync(emptyHome, { recursive: true });
const mskIam = { KAFKA_BROKERS: saslBrokers.join(','), KAFKA_SASL_MECHANISM: 'aws-msk-iam', KAFKA_AWS_REGION: STACK_MSK_IAM.region };

// A port another process holds.
const occupied = createServer();
await new Promise<void>((resolve) => occupied.listen(0, '127.0.0.1', resolve));
const busyPort = String((occupied.address() as AddressInfo).port);

// A proxy in front of a ClickHouse server that is down: nginx's error page for every request.
const badGateway = createServer((_request, response) => {
  response.writeHead(502, { 'Content-Type': 'text/html' });
  response.end('<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n');
});
await new Promise<void>((resolve) => badGateway.listen(0, '127.0.0.1', resolve));
const badGatewayUrl = `http://127.0.0.1:${(badGateway.address() as AddressInfo).port}`;

// The emulator assumes any role and lists an organization's accounts to anyone; in front of it, an AWS that refuses
// both, as it does a role whose trust policy does not name the caller, and credentials outside the management account.
const refusingSts = await startFaultProxy(motoEndpoint, (request): Fault => {
  const authorization = String(request.headers.authorization);
  if (authorization.includes('/sts/aws4_request')) return assumeRoleDenied('arn:aws:iam::111111111111:role/apigw-reader');
  if (authorization.includes('/organizations/aws4_request')) {
    return {
      status: 400,
      headers: { 'Content-Type': 'application/x-amz-json-1.1', 'x-amzn-ErrorType': 'AccessDeniedException' },
      body: '{"__type":"AccessDeniedException","Message":"You don\'t have permissions to access this resource."}',
    };
  }
  return 'forward';
});

describe('bad configuration stops with one line naming the problem, and writes nothing', { timeout: 180_000 }, () => {
  after(async () => {
    occupied.close();
    badGateway.close();
    await refusingSts.close();
    await stopClickHouseServer(clickHouseServer);
    rmSync(clickHouseServerDir, { recursive: true, force: true });
    rmSync(emptyHome, { recursive: true, force: true });
  });
  const cases = [
    { name: 'an unparsable KAFKA_BROKERS', variable: 'KAFKA_BROKERS', env: { KAFKA_BROKERS: 'kafka:not-a-port,,' } },
    { name: 'an unreachable registry', variable: 'SCHEMA_REGISTRY_URL', env: { SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1/apis/ccompat/v7' } },
    { name: 'a malformed CLICKHOUSE_URL', variable: 'CLICKHOUSE_URL', env: { CLICKHOUSE_URL: 'clickhouse//nohost:8123' } },
    // The ClickHouse client's own log lines (a hint about timeouts, the failed request) stay out of it.
    { name: 'a ClickHouse server that does not answer', variable: 'CLICKHOUSE_URL', env: { CLICKHOUSE_URL: 'http://127.0.0.1:1' }, commands: ['run', 'sink'] },
    // Its error page is the client's error message: the page's title says what happened, not its first line.
    {
      name: 'a proxy in front of ClickHouse that answers with its error page', variable: 'CLICKHOUSE_URL', commands: ['run', 'sink'], status: 3,
      env: { CLICKHOUSE_URL: badGatewayUrl }, says: `ClickHouse does not answer at ${badGatewayUrl} (an HTML page answered: 502 Bad Gateway)`,
    },
    // A configuration error (exit 2): the same path will not do at the next start either.
    { name: 'a CLICKHOUSE_URL naming a file', variable: 'CLICKHOUSE_URL', env: { CLICKHOUSE_URL: `chdb://${process.execPath}` }, commands: ['run', 'sink'], status: 2 },
    // Seen only at the first statement before, after the topic was made and the schemas registered.
    {
      name: 'ClickHouse credentials the server refuses', variable: 'CLICKHOUSE_URL', commands: ['run', 'sink'], status: 3,
      env: { CLICKHOUSE_URL: `http://apigw:not-the-password@127.0.0.1:${clickHousePort}` },
    },
    { name: 'a metrics port in use', variable: 'APIGW_METRICS_PORT', env: { APIGW_METRICS_PORT: busyPort } },
    { name: 'a metrics address not of this machine', variable: 'APIGW_METRICS_HOST', env: { APIGW_METRICS_PORT: busyPort, APIGW_METRICS_HOST: '192.0.2.1' } },
    { name: 'a query API port in use', variable: 'APIGW_QUERY_PORT', env: { APIGW_QUERY_PORT: busyPort }, commands: ['run', 'sink'] },
    {
      name: 'SASL credentials the brokers refuse', variable: 'KAFKA_SASL_USERNAME', commands: ['run', 'snapshot'],
      env: { KAFKA_BROKERS: saslBrokers.join(','), KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: STACK_SASL_USER.username, KAFKA_SASL_PASSWORD: 'not-the-password' },
    },
    {
      name: 'SCRAM credentials the brokers refuse', variable: 'KAFKA_SASL_USERNAME', commands: ['sink'],
      env: { KAFKA_BROKERS: saslBrokers.join(','), KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: STACK_SASL_USER.username, KAFKA_SASL_PASSWORD: 'not-the-password' },
    },
    { name: 'a TLS certificate no trusted CA signs', variable: 'KAFKA_SSL_CA_FILE', env: { KAFKA_BROKERS: tlsBrokers.join(','), KAFKA_SSL: 'true' }, commands: ['run'] },
    // kafkajs's own OAUTHBEARER took the broker's refusal for success, and the start failed on a closed connection.
    {
      name: 'an MSK IAM token the brokers refuse', variable: 'KAFKA_SASL_MECHANISM', commands: ['run', 'sink'], status: 3,
      env: { ...mskIam, AWS_ACCESS_KEY_ID: STACK_MSK_IAM.accessKeyId, AWS_SECRET_ACCESS_KEY: 'not-the-password' },
      says: `the aws-msk-iam token for region ${STACK_MSK_IAM.region} of access key ${STACK_MSK_IAM.accessKeyId} was refused by the Kafka brokers at ${saslBrokers.join(',')}`,
    },
    {
      name: 'MSK IAM without AWS credentials', variable: 'KAFKA_SASL_MECHANISM', commands: ['sink'], status: 3,
      env: { ...mskIam, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_EC2_METADATA_DISABLED: 'true', HOME: emptyHome },
      says: `the aws-msk-iam token for region ${STACK_MSK_IAM.region} could not be made`,
    },
    { name: 'MSK IAM with a password', variable: 'KAFKA_SASL_PASSWORD', env: { ...mskIam, KAFKA_SASL_PASSWORD: 'not-the-password' }, commands: ['snapshot'], status: 2 },
    { name: 'a SASL listener reached without SASL', variable: 'KAFKA_BROKERS', env: { KAFKA_BROKERS: saslBrokers.join(',') }, commands: ['run'] },
    { name: 'a SASL mechanism without a password', variable: 'KAFKA_SASL_PASSWORD', env: { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'apigw' }, commands: ['sink'] },
    {
      name: 'a role that cannot be assumed', variable: 'AWS_ROLE_ARNS', commands: ['run', 'snapshot'],
      env: { AWS_ROLE_ARNS: 'arn:aws:iam::111111111111:role/apigw-reader', AWS_ENDPOINT_URL: refusingSts.url },
    },
    { name: 'accounts to exclude without an organization', variable: 'AWS_ORGANIZATION_EXCLUDE_ACCOUNTS', env: { AWS_ORGANIZATION_EXCLUDE_ACCOUNTS: '111111111111' } },
    { name: 'an external id without a role to give it with', variable: 'AWS_ROLE_EXTERNAL_ID', env: { AWS_ROLE_EXTERNAL_ID: 'apigw-7f3a' } },
    {
      name: 'an organization whose accounts cannot be listed', variable: 'AWS_ORGANIZATION_ROLE', commands: ['run', 'snapshot'],
      env: { AWS_ORGANIZATION_ROLE: 'apigw-reader', AWS_ENDPOINT_URL: refusingSts.url },
    },
  ];
  // Configuration is validated as a whole, so even the snapshotter (which never opens ClickHouse) refuses a bad CLICKHOUSE_URL.
  for (const command of ['run', 'sink', 'snapshot']) {
    for (const testCase of cases.filter((c) => !c.commands || c.commands.includes(command))) {
      it(`${command}: ${testCase.name}`, async () => {
        const topic = `test.${uniqueName('badconf')}`;
        const dataDir = join(STACK_DIR, 'test-data', uniqueName('badconf'));
        const subjectsBefore = await registrySubjects();
        const result = await apigwStream([command], {
          KAFKA_BROKERS: brokers.join(','),
          SCHEMA_REGISTRY_URL: registryUrl,
          CLICKHOUSE_URL: `chdb://${dataDir}`,
          AWS_REGIONS: 'us-west-2',
          AWS_ENDPOINT_URL: motoEndpoint,
          APIGW_TOPIC: topic,
          ...testCase.env,
        });
        if (testCase.status) assert.equal(result.status, testCase.status, result.stderr);
        else assert.notEqual(result.status, 0, 'exits non-zero');
        assert.equal(result.stdout, '', 'prints nothing on stdout');
        assert.equal(result.stderr.split('\n').length, 1, `one line on stderr, got:\n${result.stderr}`);
        assert.match(result.stderr, new RegExp(testCase.variable), 'names the variable');
        if (testCase.says) assert.ok(result.stderr.includes(testCase.says), result.stderr);
        assert.doesNotMatch(result.stderr, /not-the-password/, 'never shows a password');
        assert.equal(await topicExists(topic), false, 'creates no topic');
        assert.deepEqual(await registrySubjects(), subjectsBefore, 'registers no schema');
        assert.equal(existsSync(dataDir), false, 'creates no ClickHouse data');
      });
    }
  }

  it('query: a directory nothing has written, a database without the tables, one that lacks some, one an earlier release made, and where they are', async () => {
    const dataDir = join(STACK_DIR, 'test-data', uniqueName('unwritten'));
    const query = (database = 'apigw') => apigwStream(['query', 'current'], { CLICKHOUSE_URL: `chdb://${dataDir}`, CLICKHOUSE_DATABASE: database });
    const nothingWritten = 'nothing has written there yet (a `sink` or `run` does from its start); check that CLICKHOUSE_URL and CLICKHOUSE_DATABASE name what it uses';
    const unwritten = await query();
    assert.equal(unwritten.status, 3);
    assert.equal(unwritten.stderr, `apigw-stream: CLICKHOUSE_URL: no embedded ClickHouse data at ${dataDir}: ${nothingWritten}`);
    assert.equal(existsSync(dataDir), false, 'starts no engine in a directory nothing has written');
    mkdirSync(dataDir, { recursive: true });
    try {
      const noTables = await query('nothing_here');
      assert.equal(noTables.status, 3);
      assert.equal(noTables.stderr, `apigw-stream: CLICKHOUSE_DATABASE: database nothing_here at ${dataDir} holds no apigw-stream tables; ${nothingWritten}`);
      const client = await openClickHouse({ kind: 'chdb', path: dataDir });
      await client.command({ query: 'CREATE DATABASE partial' });
      await client.command({ query: 'CREATE TABLE partial.aws_apigatewayv2_apis (api_id String) ENGINE = MergeTree ORDER BY api_id' });
      await applySchema(client, 'complete');
      await client.close();
      const partial = await query('partial');
      assert.equal(partial.status, 3);
      assert.match(partial.stderr, /^apigw-stream: CLICKHOUSE_DATABASE: database partial at \S+ lacks aws_apigatewayv2_api_integrations, aws_apigatewayv2_api_integrations_history, aws_apigatewayv2_api_integrations_attributions, aws_apigatewayv2_api_integrations_history_attributed, aws_apigatewayv2_api_integrations_live, [^\n]*; complete there does: set CLICKHOUSE_DATABASE to ask it$/);
      const elsewhere = await query('apigw');
      assert.equal(elsewhere.stderr, `apigw-stream: CLICKHOUSE_DATABASE: database apigw at ${dataDir} holds no apigw-stream tables; complete there does: set CLICKHOUSE_DATABASE to ask it`);
      assert.equal((await query('complete')).status, 0, 'the database that holds them answers');
      const reopened = await openClickHouse({ kind: 'chdb', path: dataDir });
      await applySchema(reopened, 'earlier');
      await reopened.command({ query: 'DROP VIEW earlier.aws_apigatewayv2_api_integrations_history_attributed' });
      await reopened.command({ query: 'DROP TABLE earlier.aws_apigatewayv2_api_integrations_attributions' });
      await reopened.close();
      const earlier = await query('earlier');
      assert.equal(earlier.status, 3);
      assert.equal(earlier.stderr, `apigw-stream: CLICKHOUSE_DATABASE: database earlier at ${dataDir} lacks aws_apigatewayv2_api_integrations_attributions, aws_apigatewayv2_api_integrations_history_attributed; an earlier release made it: a \`sink\` or \`run\` of this one adds the rest at its start`);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('tail: a topic nothing has produced to is named, and not created', async () => {
    const topic = `test.${uniqueName('untailed')}`;
    const result = await apigwStream(['tail'], { KAFKA_BROKERS: brokers.join(','), SCHEMA_REGISTRY_URL: registryUrl, APIGW_TOPIC: topic });
    assert.equal(result.status, 3);
    assert.equal(result.stderr, `apigw-stream: APIGW_TOPIC: no topic ${topic} at ${brokers.join(',')}: nothing has produced to it yet (a \`snapshot\`, \`listen\` or \`run\` creates it)`);
    assert.equal(await topicExists(topic), false);
  });

  it('snapshot without any region names AWS_REGIONS', async () => {
    const result = await apigwStream(['snapshot', '--once'], { KAFKA_BROKERS: brokers.join(','), SCHEMA_REGISTRY_URL: registryUrl });
    assert.equal(result.status, 2);
    assert.equal(result.stderr, 'apigw-stream: configuration error: AWS_REGIONS: no region configured: set AWS_REGIONS (or AWS_REGION)');
  });
});
