import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { UpdateIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import kafkajs, { type AclEntry } from 'kafkajs';
import { STACK_MSK_IAM, STACK_SASL_USER } from '../../stack/parts.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { createChangeCodec } from '../../services/shared/codec.js';
import { dlqTopic, withAdmin } from '../../services/shared/kafka.js';
import { checkpointTopic } from '../../services/cloudtrail-listener/checkpoint-store.js';
import type { RedriveReport } from '../../services/sink/dead-letters.js';
import { cloudTrailSource, integrationChange } from '../support/changes.js';
import { apigwStream, complaints, currentTimeouts, startApigwStream, tailJson } from '../support/cli.js';
import { startCloudTrailServer, type CloudTrailServer } from '../support/cloudtrail-server.js';
import { awsClient, motoEndpoint, plainKafka, produce, registrySubjects, registryUrl, saslBrokers, testEnvironment, topicMessages, waitFor } from '../support/harness.js';

// kafkajs's CommonJS exports, past what Node's named-export detection finds in its index.
const { AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = kafkajs;

const REGION = 'eu-north-1';
const PRINCIPAL = `User:${STACK_SASL_USER.username}`;
type Resource = keyof typeof AclResourceTypes;
type Operation = keyof typeof AclOperationTypes;

const allow = (resourceType: Resource, name: string, operations: Operation[], { prefixed = false, principal = PRINCIPAL } = {}): AclEntry[] =>
  operations.map((operation) => ({
    resourceType: AclResourceTypes[resourceType], resourceName: name,
    resourcePatternType: prefixed ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
    principal, host: '*', operation: AclOperationTypes[operation], permissionType: AclPermissionTypes.ALLOW,
  }));

/**
 * The stack's broker lets everyone do what no ACL names. An ACL of a principal no one is, on every topic, group,
 * transactional id and the cluster, leaves the SASL user only what it is granted, as on a cluster that keeps ACLs.
 */
const NO_ONE = 'User:apigw-stream-no-one';
const LOCKDOWN = [
  ...(['TOPIC', 'GROUP', 'TRANSACTIONAL_ID'] as const).flatMap((resource) => allow(resource, '*', ['DESCRIBE'], { principal: NO_ONE })),
  ...allow('CLUSTER', 'kafka-cluster', ['DESCRIBE'], { principal: NO_ONE }),
];

/** What README's "Kafka ACLs" lists for `run`, for its topic (with the topics named after it) and its sink's group. */
function runGrants(topic: string, group: string): AclEntry[] {
  return [
    ...allow('TOPIC', topic, ['DESCRIBE', 'CREATE', 'READ', 'WRITE', 'DESCRIBE_CONFIGS'], { prefixed: true }),
    ...allow('GROUP', group, ['READ'], { prefixed: true }),
    ...allow('GROUP', 'apigw-stream-checkpoint-reader-', ['READ'], { prefixed: true }),
    ...allow('TRANSACTIONAL_ID', `apigw-stream-listener.${topic}.`, ['WRITE'], { prefixed: true }),
  ];
}

const grant = (acl: AclEntry[]) => withAdmin(plainKafka(), (admin) => admin.createAcls({ acl }));

/** Every ACL of `principals` (by default the SASL user's and the lock-down's), whatever the resource. */
const revoke = (principals = [PRINCIPAL, NO_ONE]) => withAdmin(plainKafka(), (admin) => admin.deleteAcls({
  filters: principals.map((principal) => ({
    resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY, principal, host: '*',
    operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
  })),
}));

describe('a Kafka principal held to ACLs (the local stack\'s authorizer)', { timeout: 240_000 }, () => {
  const aws = awsClient(REGION);
  const sasl = { KAFKA_BROKERS: saslBrokers.join(','), KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: STACK_SASL_USER.username, KAFKA_SASL_PASSWORD: STACK_SASL_USER.password };
  let trail: CloudTrailServer;
  let apis: SampleApi[];
  const environments: ReturnType<typeof testEnvironment>[] = [];
  const environment = (extra: Record<string, string> = {}) => {
    const env = testEnvironment({ region: REGION, extra: { ...sasl, ...extra } });
    environments.push(env);
    return env;
  };

  before(async () => {
    await revoke();
    await grant(LOCKDOWN);
    await resetEmulator(motoEndpoint);
    apis = await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'acls' });
    trail = await startCloudTrailServer();
  });
  // The other tests run without them.
  after(async () => {
    await revoke();
    await trail?.close();
    aws.destroy();
    for (const env of environments) await env.cleanup();
  });

  // `run`'s: `tail` and `redrive` read its topics after it.
  let runEnv: ReturnType<typeof testEnvironment>;

  it('`run` with the ACLs README lists for it: the snapshot and a CloudTrail change reach the tables, and nothing is refused', async () => {
    // Snapshots an hour apart: the change comes through the listener, with its transactional checkpoints.
    const env = runEnv = environment({ AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, APIGW_LISTENER_LOOKBACK_HOURS: '1', APIGW_LISTENER_POLL_SECONDS: '1', APIGW_SNAPSHOT_INTERVAL_SECONDS: '3600', LOG_LEVEL: 'info' });
    await grant(runGrants(env.config.topic, env.config.sinkGroupId));
    const { child: run, exited, log, withLog } = startApigwStream(['run'], env.env);
    const integrations = apis.reduce((n, api) => n + api.integrationIds.length, 0);
    try {
      await waitFor('the first snapshot in the current-state table', async () => (await currentTimeouts(env.env))?.size === integrations, 90_000).catch(withLog);
      const [api] = apis;
      const change = { ApiId: api!.apiId, IntegrationId: api!.integrationIds[0], TimeoutInMillis: 4242 };
      await aws.send(new UpdateIntegrationCommand(change));
      trail.record({
        region: REGION, eventName: 'UpdateIntegration', principal: { arn: 'arn:aws:iam::123456789012:user/alice' },
        requestParameters: { apiId: change.ApiId, integrationId: change.IntegrationId, timeoutInMillis: change.TimeoutInMillis }, responseElements: null,
      });
      await waitFor('the listener to carry the change', async () => [...(await currentTimeouts(env.env))?.values() ?? []].includes(4242), 60_000).catch(withLog);
    } finally {
      run.kill('SIGTERM');
    }
    assert.equal(await exited, 0, `run exits 0 on SIGTERM; its log:\n${log().slice(-2000)}`);
    assert.deepEqual(complaints(log()), [], 'no warning or error: nothing was refused');
  });

  it('`snapshot --once`, then `sink`, each with the ACLs README lists for it: the snapshot reaches the tables', async () => {
    const env = environment({ LOG_LEVEL: 'info' });
    const { topic, sinkGroupId } = env.config;
    await revoke([PRINCIPAL]);
    await grant(allow('TOPIC', topic, ['DESCRIBE', 'CREATE', 'WRITE'], { prefixed: true }));
    const snapshot = await apigwStream(['snapshot', '--once'], env.env);
    assert.equal(snapshot.status, 0, snapshot.stderr);
    assert.deepEqual(complaints(snapshot.stderr), [], 'no warning or error: nothing was refused');
    await revoke([PRINCIPAL]);
    await grant([...allow('TOPIC', topic, ['DESCRIBE', 'CREATE', 'READ', 'WRITE', 'DESCRIBE_CONFIGS'], { prefixed: true }), ...allow('GROUP', sinkGroupId, ['READ'], { prefixed: true })]);
    const { child: sink, exited, log, withLog } = startApigwStream(['sink'], env.env);
    try {
      await waitFor('the snapshot in the current-state table', async () => (await currentTimeouts(env.env))?.size === apis.reduce((n, api) => n + api.integrationIds.length, 0), 60_000).catch(withLog);
    } finally {
      sink.kill('SIGTERM');
    }
    assert.equal(await exited, 0, log());
    assert.deepEqual(complaints(log()), [], 'no warning or error: nothing was refused');
  });

  it('`listen` with the ACLs README lists for it: a CloudTrail change and its checkpoint reach their topics', async () => {
    const env = environment({ AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, APIGW_LISTENER_LOOKBACK_HOURS: '1', APIGW_LISTENER_POLL_SECONDS: '1', LOG_LEVEL: 'info' });
    const { topic } = env.config;
    await revoke([PRINCIPAL]);
    await grant([
      ...allow('TOPIC', topic, ['DESCRIBE', 'CREATE', 'WRITE', 'READ'], { prefixed: true }),
      ...allow('GROUP', 'apigw-stream-checkpoint-reader-', ['READ'], { prefixed: true }),
      ...allow('TRANSACTIONAL_ID', `apigw-stream-listener.${topic}.`, ['WRITE'], { prefixed: true }),
    ]);
    const [, api] = apis;
    trail.record({
      region: REGION, eventName: 'UpdateIntegration', principal: { arn: 'arn:aws:iam::123456789012:user/bob' },
      requestParameters: { apiId: api!.apiId, integrationId: api!.integrationIds[0], description: 'listened' }, responseElements: null,
    });
    const { child: listen, exited, log, withLog } = startApigwStream(['listen'], env.env);
    try {
      await waitFor('a CloudTrail change on the topic', async () => (await topicMessages(topic)).some(({ headers }) => headers['apigw.source'] === 'CLOUDTRAIL'), 60_000).catch(withLog);
      await waitFor('a checkpoint', async () => (await topicMessages(checkpointTopic(topic))).length > 0, 30_000).catch(withLog);
    } finally {
      listen.kill('SIGTERM');
    }
    assert.equal(await exited, 0, log());
    assert.deepEqual(complaints(log()), [], 'no warning or error: nothing was refused');
  });

  it('`tail` with the ACLs README lists for it prints the changes `run` produced', async () => {
    const { topic } = runEnv.config;
    await revoke([PRINCIPAL]);
    await grant([...allow('TOPIC', topic, ['DESCRIBE', 'READ'], { prefixed: true }), ...allow('GROUP', 'apigw-stream-tail-', ['READ'], { prefixed: true })]);
    const printed = await tailJson<{ op: string; region: string }>(['--from-beginning'], runEnv.env, 3);
    assert.ok(printed.length >= 3 && printed.every(({ region }) => region === REGION), JSON.stringify(printed));
  });

  it('`redrive` with the ACLs README lists for it: a dead letter that decodes goes back, one that does not stays', async () => {
    const { topic, sinkGroupId } = runEnv.config;
    const codec = createChangeCodec({ registryUrl, topic });
    await codec.register();
    const change = integrationChange({ region: REGION, apiId: 'acl1', integrationId: 'i-back', source: cloudTrailSource('ct-acls'), eventTime: Date.now() });
    await produce(dlqTopic(topic), [await codec.encode(change, change), { key: 'not-avro', value: 'not avro either' }]);
    await revoke([PRINCIPAL]);
    await grant([...allow('TOPIC', topic, ['DESCRIBE', 'READ', 'WRITE'], { prefixed: true }), ...allow('GROUP', sinkGroupId, ['READ'], { prefixed: true })]);
    const result = await apigwStream(['redrive', '--format', 'json'], runEnv.env);
    assert.equal(result.status, 1, `one dead letter still fails: ${result.stderr}`);
    const { counts } = JSON.parse(result.stdout) as RedriveReport;
    assert.deepEqual(counts.map(({ outcome, messages }) => [outcome, messages]).sort(), [['sent back', 1], ['still failing', 1]]);
    assert.doesNotMatch(result.stderr, /authoriz/i);
  });

  it('`snapshot --once` refused Write on its topic (with Write on another): the region is incomplete, and says why', async () => {
    const env = environment();
    const { topic, sinkGroupId } = env.config;
    await revoke([PRINCIPAL]);
    await grant([...runGrants(topic, sinkGroupId).filter(({ operation }) => operation !== AclOperationTypes.WRITE), ...allow('TOPIC', `other.${topic}`, ['WRITE'])]);
    const result = await apigwStream(['snapshot', '--once'], env.env);
    assert.equal(result.status, 1, result.stderr);
    assert.equal(result.stderr.split('\n').find((line) => line.startsWith('apigw-stream:')),
      `apigw-stream: snapshot incomplete in ${REGION} (APIGW_TOPIC: the Kafka brokers refuse the principal Write on topic ${topic} (TOPIC_AUTHORIZATION_FAILED): grant it Write on the topic)`);
  });

  it('`sink` refused Write on its dead-letter topic: stops at the message it could not dead-letter, naming the topic, and commits nothing', async () => {
    const env = environment();
    const { topic, sinkGroupId } = env.config;
    await withAdmin(plainKafka(), (admin) => admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }));
    await produce(topic, [{ key: 'not-avro', value: 'not avro either' }]);
    await revoke([PRINCIPAL]);
    await grant([...runGrants(topic, sinkGroupId).filter(({ operation }) => operation !== AclOperationTypes.WRITE), ...allow('TOPIC', `other.${topic}`, ['WRITE'])]);
    const result = await apigwStream(['sink'], env.env);
    assert.equal(result.status, 1, result.stderr);
    assert.equal(result.stderr.split('\n').find((line) => line.startsWith('apigw-stream:')),
      `apigw-stream: the sink stopped consuming ${topic}: APIGW_TOPIC: the Kafka brokers refuse the principal Write on topic ${dlqTopic(topic)} (TOPIC_AUTHORIZATION_FAILED): grant it Write on the topic`);
    const [committed] = await withAdmin(plainKafka(), (admin) => admin.fetchOffsets({ groupId: sinkGroupId, topics: [topic] }));
    assert.deepEqual(committed!.partitions.map(({ offset }) => offset), ['-1'], 'the message stays to be read again');
  });

  it('`listen` refused its transactional ids: each poll of the region says which id, and it goes on retrying', async () => {
    const env = environment({ AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, APIGW_LISTENER_POLL_SECONDS: '1', LOG_LEVEL: 'info' });
    const { topic, sinkGroupId } = env.config;
    await revoke([PRINCIPAL]);
    await grant(runGrants(topic, sinkGroupId).filter(({ resourceType }) => resourceType !== AclResourceTypes.TRANSACTIONAL_ID));
    const { child: listen, exited, log, withLog } = startApigwStream(['listen'], env.env);
    try {
      await waitFor('a poll refused its transaction', async () => log().includes('a poll of this region failed'), 30_000).catch(withLog);
    } finally {
      listen.kill('SIGTERM');
    }
    assert.equal(await exited, 0, log());
    assert.match(log(), new RegExp(`could not begin a transaction as apigw-stream-listener\\.${topic.replaceAll('.', '\\.')}\\.\\d{12}\\.${REGION}`));
    assert.match(log(), /Transactional Id authorization failed/);
  });

  it('`tail` refused Read on the topic it may describe: stops with one line saying so, not a tail waiting for nothing', async () => {
    const env = environment();
    const { topic } = env.config;
    await withAdmin(plainKafka(), (admin) => admin.createTopics({ topics: [{ topic }] }));
    await grant([...allow('TOPIC', topic, ['DESCRIBE']), ...allow('GROUP', 'apigw-stream-tail-', ['READ'], { prefixed: true })]);
    const result = await apigwStream(['tail'], env.env, { timeoutMs: 30_000 });
    assert.equal(result.status, 1, result.stderr);
    assert.equal(result.stderr.split('\n').at(-1), `apigw-stream: tail stopped consuming ${topic}: Not authorized to access topics: [Topic authorization failed]`);
  });

  it('`sink` refused Read on a group it may describe: stops with the refusal, and never says it started', async () => {
    const env = environment({ LOG_LEVEL: 'info' });
    const { topic, sinkGroupId } = env.config;
    await revoke([PRINCIPAL]);
    await grant([...runGrants(topic, 'another-group'), ...allow('GROUP', sinkGroupId, ['DESCRIBE'])]);
    const result = await apigwStream(['sink'], env.env, { timeoutMs: 60_000 });
    assert.equal(result.status, 1, result.stderr);
    assert.ok(result.stderr.includes(`apigw-stream: the sink stopped consuming ${topic}: Not authorized to access group: Group authorization failed`), result.stderr);
    assert.doesNotMatch(result.stderr, /"sink started"|error while closing/);
  });

  it('`sink` refused Read on its topic: stops, naming the topic', async () => {
    const env = environment();
    const { topic, sinkGroupId } = env.config;
    await revoke([PRINCIPAL]);
    await grant(runGrants(topic, sinkGroupId).filter(({ resourceType, operation }) => resourceType !== AclResourceTypes.TOPIC || operation !== AclOperationTypes.READ));
    const result = await apigwStream(['sink'], env.env, { timeoutMs: 60_000 });
    assert.equal(result.status, 1, result.stderr);
    assert.ok(result.stderr.includes(`apigw-stream: the sink stopped consuming ${topic}: Not authorized to access topics: [Topic authorization failed]`), result.stderr);
  });

  it('`redrive` refused Write on the topic it sends back to: one line naming it, and the dead letter stays to be redriven', async () => {
    const env = environment();
    const { topic, sinkGroupId } = env.config;
    await withAdmin(plainKafka(), (admin) => admin.createTopics({ topics: [{ topic }, { topic: dlqTopic(topic) }] }));
    const codec = createChangeCodec({ registryUrl, topic });
    await codec.register();
    const change = integrationChange({ region: REGION, apiId: 'acl2', integrationId: 'i-back', source: cloudTrailSource('ct-acls-2'), eventTime: Date.now() });
    await produce(dlqTopic(topic), [await codec.encode(change, change)]);
    await revoke([PRINCIPAL]);
    await grant([...allow('TOPIC', topic, ['DESCRIBE', 'READ'], { prefixed: true }), ...allow('TOPIC', `other.${topic}`, ['WRITE']), ...allow('GROUP', sinkGroupId, ['READ'], { prefixed: true })]);
    const result = await apigwStream(['redrive', '--format', 'json'], env.env);
    assert.equal(result.status, 3, result.stderr);
    assert.equal(result.stderr.split('\n').find((line) => line.startsWith('apigw-stream:')),
      `apigw-stream: APIGW_TOPIC: the Kafka brokers refuse the principal Write on topic ${topic} (TOPIC_AUTHORIZATION_FAILED): grant it Write on the topic`);
    const [committed] = await withAdmin(plainKafka(), (admin) => admin.fetchOffsets({ groupId: `${sinkGroupId}.redrive`, topics: [dlqTopic(topic)] }));
    assert.deepEqual(committed!.partitions.map(({ offset }) => offset), ['-1'], 'the redrive commits nothing past it');
  });

  const refusals: { name: string; command: string; env?: Record<string, string>; topicExists?: boolean; grants: (topic: string, group: string) => AclEntry[]; variable: string; says: (topic: string, group: string) => string }[] = [
    {
      name: 'ACLs for another topic prefix', command: 'run', variable: 'APIGW_TOPIC',
      grants: (topic, group) => runGrants(`other.${topic}`, group),
      says: (topic) => `do not let ${PRINCIPAL} describe topic ${topic} (TOPIC_AUTHORIZATION_FAILED): grant it Describe on the topic`,
    },
    {
      name: 'an MSK IAM identity with no grant for the topic', command: 'sink', variable: 'APIGW_TOPIC',
      env: { KAFKA_SASL_MECHANISM: 'aws-msk-iam', KAFKA_SASL_USERNAME: '', KAFKA_SASL_PASSWORD: '', KAFKA_AWS_REGION: STACK_MSK_IAM.region, AWS_ACCESS_KEY_ID: STACK_MSK_IAM.accessKeyId, AWS_SECRET_ACCESS_KEY: STACK_MSK_IAM.secretAccessKey },
      grants: (topic, group) => runGrants(topic, group),
      says: (topic) => `do not let the IAM identity of access key ${STACK_MSK_IAM.accessKeyId} describe topic ${topic} (TOPIC_AUTHORIZATION_FAILED): allow it kafka-cluster:DescribeTopic on the topic`,
    },
    {
      name: 'Write on no topic at all', command: 'snapshot', variable: 'APIGW_TOPIC',
      grants: (topic, group) => runGrants(topic, group).filter(({ operation }) => operation !== AclOperationTypes.WRITE),
      says: (topic) => `do not let ${PRINCIPAL} write to any topic (CLUSTER_AUTHORIZATION_FAILED): grant it Write on topic ${topic}`,
    },
    {
      name: 'a topic it may use but not create, which does not exist', command: 'snapshot', variable: 'APIGW_TOPIC',
      grants: (topic, group) => runGrants(topic, group).filter(({ operation }) => operation !== AclOperationTypes.CREATE),
      says: (topic) => `do not let ${PRINCIPAL} create topic ${topic}, which does not exist yet (TOPIC_AUTHORIZATION_FAILED): grant it Create on the topic (or the cluster)`,
    },
    {
      name: 'no ACL for its consumer groups', command: 'tail', variable: 'KAFKA_SASL_USERNAME', topicExists: true,
      grants: (topic, group) => runGrants(topic, group),
      says: () => `do not let ${PRINCIPAL} use consumer group apigw-stream-tail-`,
    },
    {
      name: 'no ACL for the sink\'s consumer group', command: 'sink', variable: 'APIGW_SINK_GROUP_ID',
      grants: (topic) => runGrants(topic, 'another-group'),
      says: (_topic, group) => `do not let ${PRINCIPAL} use consumer group ${group} (GROUP_AUTHORIZATION_FAILED): grant it Describe and Read on the group`,
    },
  ];
  for (const refusal of refusals) {
    it(`${refusal.command}: ${refusal.name}: one line naming ${refusal.variable}, and nothing written`, async () => {
      const env = environment(refusal.env);
      const { topic, sinkGroupId } = env.config;
      await revoke([PRINCIPAL]);
      await grant(refusal.grants(topic, sinkGroupId));
      if (refusal.topicExists) await withAdmin(plainKafka(), (admin) => admin.createTopics({ topics: [{ topic }] }));
      const subjectsBefore = await registrySubjects();
      const result = await apigwStream([refusal.command], env.env);
      assert.equal(result.status, 3, result.stderr);
      assert.equal(result.stderr.split('\n').length, 1, `one line on stderr, got:\n${result.stderr}`);
      assert.ok(result.stderr.startsWith(`apigw-stream: ${refusal.variable}: the Kafka brokers at ${saslBrokers.join(',')} `), result.stderr);
      assert.ok(result.stderr.includes(refusal.says(topic, sinkGroupId)), result.stderr);
      const topics = await withAdmin(plainKafka(), (admin) => admin.listTopics());
      assert.deepEqual(topics.filter((name) => name.startsWith(topic)), refusal.topicExists ? [topic] : [], 'creates no topic');
      assert.deepEqual(await registrySubjects(), subjectsBefore, 'registers no schema');
      assert.equal(existsSync(env.config.clickhouse.kind === 'chdb' ? env.config.clickhouse.path : ''), false, 'creates no ClickHouse data');
    });
  }
});
