import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getHeapStatistics } from 'node:v8';
import { describeConfig, loadConfig, parseClickHouseUrl, unreadVariables } from '../../services/shared/config.js';
import { ConfigError } from '../../services/shared/errors.js';

describe('configuration', () => {
  it('defaults to the local stack and the embedded engine', () => {
    const config = loadConfig({ AWS_REGION: 'eu-central-1' });
    assert.deepEqual(config.kafkaBrokers, ['127.0.0.1:9092']);
    assert.equal(config.schemaRegistryUrl, 'http://127.0.0.1:8081/apis/ccompat/v7');
    assert.deepEqual(config.clickhouse, { kind: 'chdb', path: './data/clickhouse' });
    assert.deepEqual(config.regions, ['eu-central-1']);
    assert.equal(config.topic, 'aws.apigatewayv2.integrations');
  });

  it('names the variables under its prefix it does not read, with the setting each likely stands for', () => {
    assert.deepEqual(unreadVariables({
      APIGW_SNAPSHOT_INTERVAL: '60', APIGW_METRIC_PORT: '9464', APIGW_ID: 'a1b2c3', APIGW_TOPIC: 'read', APIGW_STACK_DIR: '/tmp/stack',
      APIGW_STACK_MOTO_PORT: '5001', KAFKA_HEAP_OPTS: '-Xmx1g',
    }), [
      { name: 'APIGW_ID' },
      { name: 'APIGW_METRIC_PORT', meant: 'APIGW_METRICS_PORT' },
      { name: 'APIGW_SNAPSHOT_INTERVAL', meant: 'APIGW_SNAPSHOT_INTERVAL_SECONDS' },
    ]);
    // What Kubernetes gives a pod for a service named apigw-stream beside it.
    assert.deepEqual(unreadVariables({
      APIGW_STREAM_SERVICE_HOST: '10.0.0.7', APIGW_STREAM_SERVICE_PORT: '9464', APIGW_STREAM_SERVICE_PORT_METRICS: '9464',
      APIGW_STREAM_PORT: 'tcp://10.0.0.7:9464', APIGW_STREAM_PORT_9464_TCP: 'tcp://10.0.0.7:9464',
      APIGW_STREAM_PORT_9464_TCP_PROTO: 'tcp', APIGW_STREAM_PORT_9464_TCP_PORT: '9464', APIGW_STREAM_PORT_9464_TCP_ADDR: '10.0.0.7',
    }), []);
  });

  it('describes what a start uses for the parts it runs, with no secret in it', () => {
    const config = loadConfig({
      KAFKA_BROKERS: 'b1:9094,b2:9094', KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'apigw', KAFKA_SASL_PASSWORD: 'kafka-secret',
      SCHEMA_REGISTRY_URL: 'https://reg:registry-secret@registry.example:8081', CLICKHOUSE_URL: 'https://writer:ch-secret@ch.example:8443',
      AWS_REGIONS: 'eu-west-1,us-east-1', AWS_ROLE_ARNS: 'arn:aws:iam::111122223333:role/reader',
    });
    const sink = describeConfig(config, { snapshot: false, listen: false, sink: true });
    assert.deepEqual(sink, {
      kafka: { brokers: ['b1:9094', 'b2:9094'], sasl: 'scram-sha-512', user: 'apigw', tls: false },
      registry: 'https://registry.example:8081', topic: 'aws.apigatewayv2.integrations',
      clickhouse: 'https://ch.example:8443', clickhouseUser: 'writer', database: 'apigw', groupId: 'apigw-stream-sink',
    });
    const run = describeConfig(config, { snapshot: true, listen: true, sink: true });
    assert.deepEqual([run.regions, run.accounts, run.snapshotIntervalSeconds, run.pollSeconds], [['eu-west-1', 'us-east-1'], ['111122223333'], 300, 30]);
    assert.equal(describeConfig(config, { snapshot: true, listen: false, sink: false, once: true }).snapshotIntervalSeconds, undefined);
    assert.doesNotMatch(JSON.stringify(run), /secret/);
  });

  it('follows the stack ports', () => {
    const config = loadConfig({ APIGW_STACK_KAFKA_PORT: '19092', APIGW_STACK_REGISTRY_PORT: '18081' });
    assert.deepEqual(config.kafkaBrokers, ['127.0.0.1:19092']);
    assert.equal(config.schemaRegistryUrl, 'http://127.0.0.1:18081/apis/ccompat/v7');
  });

  it('prefers AWS_REGIONS over AWS_REGION', () => {
    assert.deepEqual(loadConfig({ AWS_REGIONS: 'us-east-1, eu-west-1', AWS_REGION: 'ap-south-1' }).regions, ['us-east-1', 'eu-west-1']);
  });

  it('reads SASL credentials and TLS for the brokers, none by default', () => {
    assert.deepEqual(loadConfig({}).kafkaSecurity, {});
    assert.deepEqual(loadConfig({ KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256', KAFKA_SASL_USERNAME: 'apigw', KAFKA_SASL_PASSWORD: 's3cret', KAFKA_SSL: 'true' }).kafkaSecurity, {
      sasl: { mechanism: 'scram-sha-256', username: 'apigw', password: 's3cret' }, ssl: true,
    });
  });

  it('takes Amazon MSK IAM with the cluster\'s region (AWS_REGION by default) and no user, and shows it so', () => {
    const msk = (env: NodeJS.ProcessEnv) => loadConfig({ KAFKA_SASL_MECHANISM: 'AWS-MSK-IAM', ...env });
    const region = (env: NodeJS.ProcessEnv) => {
      const { sasl } = msk(env).kafkaSecurity;
      return sasl && 'region' in sasl ? [sasl.mechanism, sasl.region] : undefined;
    };
    assert.deepEqual(region({ KAFKA_AWS_REGION: 'eu-west-1', AWS_REGION: 'us-east-1' }), ['oauthbearer', 'eu-west-1']);
    assert.deepEqual(region({ AWS_REGION: 'ap-south-1' }), ['oauthbearer', 'ap-south-1']);
    assert.deepEqual(region({ AWS_DEFAULT_REGION: 'sa-east-1' }), ['oauthbearer', 'sa-east-1']);
    assert.deepEqual(describeConfig(msk({ AWS_REGION: 'ap-south-1' }), { snapshot: false, listen: false, sink: true }).kafka,
      { brokers: ['127.0.0.1:9092'], sasl: 'aws-msk-iam', region: 'ap-south-1', tls: false });
    const refusal = (env: NodeJS.ProcessEnv) => {
      try {
        loadConfig(env);
        return undefined;
      } catch (error) {
        return [(error as ConfigError).variable, (error as Error).message];
      }
    };
    assert.deepEqual(refusal({ KAFKA_SASL_MECHANISM: 'aws-msk-iam' }),
      ['KAFKA_AWS_REGION', 'KAFKA_AWS_REGION: KAFKA_SASL_MECHANISM=aws-msk-iam needs the cluster\'s region: set KAFKA_AWS_REGION (or AWS_REGION)']);
    assert.deepEqual(refusal({ KAFKA_SASL_MECHANISM: 'aws-msk-iam', AWS_REGION: 'us-east-1', KAFKA_SASL_PASSWORD: 'hunter2' }),
      ['KAFKA_SASL_PASSWORD', 'KAFKA_SASL_PASSWORD: set, but KAFKA_SASL_MECHANISM=aws-msk-iam signs with the AWS credentials, not a user name and password: unset it']);
    assert.deepEqual(refusal({ KAFKA_AWS_REGION: 'us-east-1' }),
      ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_MECHANISM: KAFKA_AWS_REGION is set, but no mechanism signs for it: set KAFKA_SASL_MECHANISM to aws-msk-iam']);
    assert.deepEqual(refusal({ KAFKA_AWS_REGION: 'us-east-1', KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'apigw', KAFKA_SASL_PASSWORD: 'hunter2' }),
      ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_MECHANISM: KAFKA_AWS_REGION is set, but plain does not sign for a region: set KAFKA_SASL_MECHANISM to aws-msk-iam']);
    assert.equal(refusal({ KAFKA_SASL_MECHANISM: 'aws-msk-iam', KAFKA_AWS_REGION: 'us-east' })?.[0], 'KAFKA_AWS_REGION');
  });

  it('never shows the SASL password in a refusal', () => {
    assert.throws(() => loadConfig({ KAFKA_SASL_USERNAME: 'apigw', KAFKA_SASL_PASSWORD: 'hunter2' }), (error: Error) => !error.message.includes('hunter2'));
  });

  it('reads basic credentials from the registry URL, and keeps them out of the URL it shows', () => {
    const config = loadConfig({ SCHEMA_REGISTRY_URL: 'https://key:s%40cret@registry.example.com/' });
    assert.equal(config.schemaRegistryUrl, 'https://registry.example.com');
    assert.deepEqual(config.schemaRegistryAuth, { username: 'key', password: 's@cret' });
    assert.throws(() => loadConfig({ SCHEMA_REGISTRY_URL: 'ftp://key:hunter2@registry.example.com' }), (error: Error) => error.message.includes('ftp://key:***@') && !error.message.includes('hunter2'));
    assert.throws(() => loadConfig({ CLICKHOUSE_URL: 'tcp://apigw:hunter2@ch:9000' }), (error: Error) => !error.message.includes('hunter2'));
  });

  it('reads one role per account to assume, each account from its ARN; none by default', () => {
    assert.deepEqual(loadConfig({}).awsRoles, []);
    assert.deepEqual(loadConfig({ AWS_ROLE_ARNS: 'arn:aws:iam::111111111111:role/apigw-reader, arn:aws-us-gov:iam::222222222222:role/ops/apigw-reader' }).awsRoles, [
      { arn: 'arn:aws:iam::111111111111:role/apigw-reader', accountId: '111111111111' },
      { arn: 'arn:aws-us-gov:iam::222222222222:role/ops/apigw-reader', accountId: '222222222222' },
    ]);
  });

  it('reads the role to assume in every account of the organization, with its path', () => {
    assert.equal(loadConfig({}).awsOrganization, undefined);
    assert.deepEqual(loadConfig({ AWS_ORGANIZATION_ROLE: 'ops/apigw-reader' }).awsOrganization, { roleName: 'ops/apigw-reader', refreshSeconds: 900, units: [], excludedAccounts: [] });
    assert.deepEqual(loadConfig({ AWS_ORGANIZATION_ROLE: 'apigw-reader', AWS_ORGANIZATION_EXCLUDE_ACCOUNTS: '111111111111, 222222222222' }).awsOrganization?.excludedAccounts, ['111111111111', '222222222222']);
  });

  it('reads a ClickHouse server URL with credentials', () => {
    assert.deepEqual(parseClickHouseUrl('https://alice:s%3Acret@ch.example.com:8443/'), {
      kind: 'http', url: 'https://ch.example.com:8443', username: 'alice', password: 's:cret',
    });
  });

  it('holds as many integrations in the sink as half the heap takes at 4 KiB each, unless told', () => {
    assert.equal(loadConfig({}).sinkHeldIntegrations, Math.floor(getHeapStatistics().heap_size_limit / 8192));
    assert.equal(loadConfig({ APIGW_SINK_HELD_INTEGRATIONS: '250000' }).sinkHeldIntegrations, 250_000);
  });

  it('names the range a number is out of, or not a number of', () => {
    const refused = (env: Record<string, string>): string => {
      try {
        loadConfig(env);
      } catch (error) {
        return (error as Error).message;
      }
      return 'accepted';
    };
    assert.equal(refused({ APIGW_SNAPSHOT_CONCURRENCY: '0' }), 'APIGW_SNAPSHOT_CONCURRENCY: expected a whole number of concurrent calls from 1 to 64, got "0"');
    assert.equal(refused({ APIGW_TOPIC_PARTITIONS: '2.5' }), 'APIGW_TOPIC_PARTITIONS: expected a whole number of partitions from 1 to 1000, got "2.5"');
    assert.equal(refused({ APIGW_LISTENER_POLL_SECONDS: 'soon' }), 'APIGW_LISTENER_POLL_SECONDS: expected a number of seconds, at least 0.1, got "soon"');
    assert.equal(refused({ APIGW_METRICS_PORT: '99999' }), 'APIGW_METRICS_PORT: expected a TCP port from 0 to 65535, got "99999"');
    assert.equal(refused({ APIGW_SINK_HELD_INTEGRATIONS: '0' }), 'APIGW_SINK_HELD_INTEGRATIONS: expected a whole number of integrations, at least 1, got "0"');
    assert.equal(refused({ APIGW_METRICS_HOST: 'metrics.internal' }), 'APIGW_METRICS_HOST: expected an IP address to listen on, such as 0.0.0.0 (every interface) or 127.0.0.1, got "metrics.internal"');
  });

  const bad: [string, Record<string, string>][] = [
    ['KAFKA_BROKERS', { KAFKA_BROKERS: 'localhost' }],
    ['KAFKA_BROKERS', { KAFKA_BROKERS: ' , ' }],
    ['SCHEMA_REGISTRY_URL', { SCHEMA_REGISTRY_URL: 'registry:8081' }],
    ['CLICKHOUSE_URL', { CLICKHOUSE_URL: 'tcp://ch:9000' }],
    ['CLICKHOUSE_URL', { CLICKHOUSE_URL: 'chdb://' }],
    ['CLICKHOUSE_DATABASE', { CLICKHOUSE_DATABASE: 'x; DROP TABLE y' }],
    ['AWS_REGIONS', { AWS_REGIONS: 'us-east-1,moon-1' }],
    ['AWS_ACCOUNT_ID', { AWS_ACCOUNT_ID: '1234' }],
    ['AWS_ROLE_ARNS', { AWS_ROLE_ARNS: 'arn:aws:iam::111111111111:user/apigw' }],
    ['AWS_ROLE_ARNS', { AWS_ROLE_ARNS: 'arn:aws:iam::111111111111:role/a,arn:aws:iam::111111111111:role/b' }],
    ['AWS_ROLE_ARNS', { AWS_ACCOUNT_ID: '123456789012', AWS_ROLE_ARNS: 'arn:aws:iam::111111111111:role/apigw-reader' }],
    ['AWS_ORGANIZATION_ROLE', { AWS_ORGANIZATION_ROLE: 'arn:aws:iam::111111111111:role/apigw-reader' }],
    ['AWS_ORGANIZATION_ROLE', { AWS_ROLE_ARNS: 'arn:aws:iam::111111111111:role/apigw-reader', AWS_ORGANIZATION_ROLE: 'apigw-reader' }],
    ['AWS_ORGANIZATION_REFRESH_SECONDS', { AWS_ORGANIZATION_REFRESH_SECONDS: '0' }],
    ['AWS_ORGANIZATION_EXCLUDE_ACCOUNTS', { AWS_ORGANIZATION_ROLE: 'apigw-reader', AWS_ORGANIZATION_EXCLUDE_ACCOUNTS: '111111111111,sandbox' }],
    ['AWS_ORGANIZATION_UNITS', { AWS_ORGANIZATION_ROLE: 'apigw-reader', AWS_ORGANIZATION_UNITS: 'ou-ab12-cd34ef56,Payments' }],
    ['AWS_ORGANIZATION_UNITS', { AWS_ORGANIZATION_UNITS: 'ou-ab12-cd34ef56' }],
    ['AWS_ROLE_EXTERNAL_ID', { AWS_ROLE_ARNS: 'arn:aws:iam::111111111111:role/apigw-reader', AWS_ROLE_EXTERNAL_ID: 'has spaces' }],
    ['APIGW_TOPIC_PARTITIONS', { APIGW_TOPIC_PARTITIONS: 'three' }],
    ['APIGW_SNAPSHOT_REGIONS_AT_ONCE', { APIGW_SNAPSHOT_REGIONS_AT_ONCE: '0' }],
    ['APIGW_STACK_KAFKA_PORT', { APIGW_STACK_KAFKA_PORT: '70000' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
    ['KAFKA_SASL_MECHANISM', { KAFKA_SASL_MECHANISM: 'kerberos' }],
    ['KAFKA_SASL_USERNAME', { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_PASSWORD: 'secret' }],
    ['KAFKA_SASL_PASSWORD', { KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'apigw' }],
    ['KAFKA_SASL_MECHANISM', { KAFKA_SASL_USERNAME: 'apigw', KAFKA_SASL_PASSWORD: 'secret' }],
    ['KAFKA_SSL', { KAFKA_SSL: 'yes' }],
    ['KAFKA_SSL_CA_FILE', { KAFKA_SSL_CA_FILE: '/nonexistent/ca.pem' }],
    ['KAFKA_SSL_CA_FILE', { KAFKA_SSL_CA_FILE: fileURLToPath(new URL('../../package.json', import.meta.url)) }],
    ['CLICKHOUSE_CA_FILE', { CLICKHOUSE_CA_FILE: '/nonexistent/ca.pem', CLICKHOUSE_URL: 'https://clickhouse.internal:8443' }],
    ['CLICKHOUSE_CA_FILE', { CLICKHOUSE_CA_FILE: fileURLToPath(new URL('../../package.json', import.meta.url)), CLICKHOUSE_URL: 'https://clickhouse.internal:8443' }],
    ['CLICKHOUSE_CA_FILE', { CLICKHOUSE_CA_FILE: '/etc/ssl/certs/ca-certificates.crt', CLICKHOUSE_URL: 'http://clickhouse.internal:8123' }],
    ['CLICKHOUSE_CA_FILE', { CLICKHOUSE_CA_FILE: '/etc/ssl/certs/ca-certificates.crt' }],
  ];
  for (const [variable, env] of bad) {
    it(`names ${variable} when it is ${JSON.stringify(Object.values(env)[0])}`, () => {
      assert.throws(() => loadConfig(env), (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.variable, variable);
        assert.match(error.message, new RegExp(`^${variable}: `));
        assert.doesNotMatch(error.message, /\n/);
        return true;
      });
    });
  }
});
