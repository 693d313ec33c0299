import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { DeleteIntegrationCommand, UpdateIntegrationCommand } from '@aws-sdk/client-apigatewayv2';
import kafkajs from 'kafkajs';
import type { Pipeline } from '../../cli/pipeline.js';
import { dlqTopic, ensureTopics, topicSettings, withAdmin } from '../../services/shared/kafka.js';
import { sleep } from '../../services/shared/retry.js';
import { PROJECT_ROOT } from '../../stack/layout.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { currentTimeouts, queryJson, startApigwStream } from '../support/cli.js';
import { awsClient, motoEndpoint, plainKafka, rows, testEnvironment, topicMessages, waitFor } from '../support/harness.js';

const REGION = 'ap-south-2';
const aws = awsClient(REGION);

describe('the topic is deleted under a sink running alone', { timeout: 300_000 }, () => {
  let env: ReturnType<typeof testEnvironment>;
  let producers: Pipeline;
  let sink: ReturnType<typeof startApigwStream>;
  let apis: SampleApi[];
  let gone: SampleApi;

  const logLines = (text: string) => sink.log().split('\n').filter((line) => line.includes(text));

  before(async () => {
    await resetEmulator(motoEndpoint);
    apis = await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'deleted' });
    env = testEnvironment({ region: REGION, extra: { LOG_LEVEL: 'fatal' } });
    sink = startApigwStream(['sink'], { ...env.env, LOG_LEVEL: 'info' });
    // Closed before the topic is deleted: a running snapshotter would make it again within seconds.
    const first = await env.open({ snapshot: true });
    await first.snapshotter!.runOnce();
    // A version late in the old topic, at an offset the new topic's first snapshot does not reach.
    gone = apis.find((api) => api.protocol === 'WEBSOCKET')!;
    await aws.send(new UpdateIntegrationCommand({ ApiId: gone.apiId, IntegrationId: gone.integrationIds[0], TimeoutInMillis: 5151 }));
    await first.snapshotter!.runOnce();
    await first.close();
  });
  after(async () => {
    sink?.child.kill('SIGKILL');
    await producers?.close();
    aws.destroy();
    await env?.cleanup();
  });

  it('the sink makes it again and says so, and applies the events and deletions of the new topic', async () => {
    const integrations = apis.reduce((n, api) => n + api.integrationIds.length, 0);
    const goneArn = `arn:aws:apigateway:${REGION}::/apis/${gone.apiId}/integrations/${gone.integrationIds[0]}`;
    await waitFor('the sink to apply both snapshots', async () => (await currentTimeouts(env.env))?.get(goneArn) === 5151, 60_000).catch(sink.withLog);

    await withAdmin(plainKafka(), (admin) => admin.deleteTopics({ topics: [env.config.topic] }));
    // It looks every 10 s: a poison message's send to its dead-letter topic would wait for it, and so do its fetches.
    await waitFor('the sink to make its topics again', async () => logLines('topics did not exist (deleted?): made them again').length > 0, 30_000).catch(sink.withLog);

    // Made again, the topic's offsets start over, below the ones the tables hold for each integration: a sink that
    // took its events for redeliveries would apply none of them.
    const api = apis.find((candidate) => candidate.protocol === 'HTTP')!;
    const arn = `arn:aws:apigateway:${REGION}::/apis/${api.apiId}/integrations/${api.integrationIds[0]}`;
    await aws.send(new UpdateIntegrationCommand({ ApiId: api.apiId, IntegrationId: api.integrationIds[0], TimeoutInMillis: 4242 }));
    // Nor is a stored offset a guide to whether the new topic's first snapshot, which no longer sees this one, came
    // later than its state.
    await aws.send(new DeleteIntegrationCommand({ ApiId: gone.apiId, IntegrationId: gone.integrationIds[0] }));
    producers = await env.open({ snapshot: true });
    const result = await producers.snapshotter!.runOnce();
    assert.deepEqual(result.regions.map((region) => region.completed), [true], result.regions[0]?.error);
    await waitFor('the change to reach the current-state table', async () => (await currentTimeouts(env.env))?.get(arn) === 4242, 120_000).catch(sink.withLog);
    // The first read into a new topic is seen whole from its first offset, so its marker deletes what it did not see.
    await waitFor('the deletion to reach the current-state table', async () => (await currentTimeouts(env.env))?.has(goneArn) === false, 60_000).catch(sink.withLog);
    assert.equal((await currentTimeouts(env.env))?.size, integrations - 1, 'every other integration stays');

    const versions = await queryJson<{ version: number }[]>(['history', arn], env.env);
    assert.deepEqual(versions.map((row) => row.version), [1, 2], 'two versions of the changed integration, none repeated');
    const goneVersions = await queryJson<{ version: number; operation: string }[]>(['history', goneArn], env.env);
    assert.deepEqual(goneVersions.map((row) => [row.version, row.operation]), [[1, 'CREATE'], [2, 'UPDATE'], [3, 'DELETE']]);
    const [{ changes }] = await queryJson<{ changes: number }[]>(['who'], env.env) as [{ changes: number }];
    assert.equal(Number(changes), integrations + 3, 'one history row per integration, and one for each change and the deletion: nothing written twice');

    sink.child.kill('SIGTERM');
    const code = await Promise.race([sink.exited, sleep(30_000).then(() => 'still running')]);
    assert.equal(code, 0, `the sink exits 0 on SIGTERM; its log: ${sink.log().slice(-1500)}`);
  });
});

describe('the topic is deleted and made again, already longer than the old one, while the sink looks away', { timeout: 300_000 }, () => {
  let env: ReturnType<typeof testEnvironment>;
  let elsewhere: ReturnType<typeof testEnvironment>;
  let sink: ReturnType<typeof startApigwStream>;
  let apis: SampleApi[];

  before(async () => {
    await resetEmulator(motoEndpoint);
    apis = await seedSampleInventory(aws, { httpApis: 2, websocketApis: 1, prefix: 'remade' });
    env = testEnvironment({ region: REGION, extra: { LOG_LEVEL: 'fatal' } });
    elsewhere = testEnvironment({ region: REGION, extra: { LOG_LEVEL: 'fatal' } });
    sink = startApigwStream(['sink'], { ...env.env, LOG_LEVEL: 'info' });
  });
  after(async () => {
    sink?.child.kill('SIGKILL');
    aws.destroy();
    await env?.cleanup();
    await elsewhere?.cleanup();
  });

  it('consumes the new topic from its start, not from its old positions', async () => {
    const api = apis.find((candidate) => candidate.protocol === 'HTTP')!;
    const arn = `arn:aws:apigateway:${REGION}::/apis/${api.apiId}/integrations/${api.integrationIds[0]}`;
    const snapshotInto = async (where: ReturnType<typeof testEnvironment>) => {
      const producers = await where.open({ snapshot: true });
      try {
        await producers.snapshotter!.runOnce();
      } finally {
        await producers.close();
      }
    };
    const setTimeoutTo = (ms: number) => aws.send(new UpdateIntegrationCommand({ ApiId: api.apiId, IntegrationId: api.integrationIds[0], TimeoutInMillis: ms }));
    await setTimeoutTo(1000);
    await snapshotInto(env);
    await waitFor('the sink to apply the first snapshot', async () => (await currentTimeouts(env.env))?.get(arn) === 1000, 60_000).catch(sink.withLog);

    // What the new topic will hold: two reads, the first with a change, so that the sink's positions in the old
    // topic (one read long) point at the second.
    await setTimeoutTo(1111);
    await snapshotInto(elsewhere);
    await setTimeoutTo(2222);
    await snapshotInto(elsewhere);
    const messages = await topicMessages(elsewhere.config.topic);

    await withAdmin(plainKafka(), (admin) => admin.deleteTopics({ topics: [env.config.topic] }));
    await sleep(2_000);
    // Made again and filled while the sink looks away (here: stopped for a moment), so that its first fetch from
    // the new topic finds it already longer than the old one.
    sink.child.kill('SIGSTOP');
    try {
      const kafka = plainKafka();
      await withAdmin(kafka, (admin) => ensureTopics(admin, env.config.topic, env.config.topicPartitions));
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({ topic: env.config.topic, acks: -1, messages: messages.map(({ partition, key, value, headers }) => ({ partition, key, value, headers })) });
      await producer.disconnect();
    } finally {
      sink.child.kill('SIGCONT');
    }
    await waitFor('the last change to reach the current-state table', async () => (await currentTimeouts(env.env))?.get(arn) === 2222, 60_000).catch(sink.withLog);
    const versions = await queryJson<{ version: number; changes: { field: string; new: unknown }[] }[]>(['history', arn], env.env);
    const timeouts = versions.map((row) => row.changes.find((change) => change.field === 'timeout_in_millis')?.new);
    assert.deepEqual(timeouts, [1000, 1111, 2222], 'every version, also the one made by the first read into the new topic');
  });
});

describe('the topic is deleted under a running tail, which does not make topics', { timeout: 300_000 }, () => {
  let env: ReturnType<typeof testEnvironment>;
  let tail: ReturnType<typeof startApigwStream>;

  before(async () => {
    env = testEnvironment({ region: REGION, extra: { LOG_LEVEL: 'fatal' } });
    await withAdmin(plainKafka(), (admin) => ensureTopics(admin, env.config.topic, env.config.topicPartitions));
    tail = startApigwStream(['tail'], { ...env.env, LOG_LEVEL: 'info' });
  });
  after(async () => {
    tail?.child.kill('SIGKILL');
    await env?.cleanup();
  });

  it('says so, and restarts its consumer with backoff, not in a loop', async () => {
    const logLines = (text: string) => tail.log().split('\n').filter((line) => line.includes(text));
    await waitFor('tail to join its consumer group', () => withAdmin(plainKafka(), async (admin) => {
      const ids = (await admin.listGroups()).groups.map((group) => group.groupId).filter((id) => id.startsWith(`apigw-stream-tail-${tail.child.pid}-`));
      return ids.length > 0 && (await admin.describeGroups(ids)).groups.some((group) => group.state === 'Stable');
    }), 30_000).catch(tail.withLog);
    await withAdmin(plainKafka(), (admin) => admin.deleteTopics({ topics: [env.config.topic] }));
    const missing = `the topic ${env.config.topic} does not exist (deleted?)`;
    // kafkajs retries the consumer's fetches for about a minute before it gives up and restarts it.
    await waitFor('tail to say that its topic is gone', async () => logLines(missing).length > 0, 150_000).catch(tail.withLog);
    const restartsBefore = logLines(missing).length;
    await sleep(15_000);
    // kafkajs alone restarts it every 200 ms or so (dozens of times in this while); with backoff (1 s doubling to 30
    // s) at most 5.
    const restarts = logLines(missing).length - restartsBefore;
    assert.ok(restarts <= 5, `restarted ${restarts} times in 15 s; tail's log: ${tail.log().slice(-1500)}`);
    tail.child.kill('SIGINT');
    const code = await Promise.race([tail.exited, sleep(30_000).then(() => 'still running')]);
    assert.equal(code, 0, `tail stops on SIGINT; its log: ${tail.log().slice(-1500)}`);
  });
});

describe("the topic's retention deletes events the sink has not written", { timeout: 180_000 }, () => {
  const said: string[] = [];
  let env: ReturnType<typeof testEnvironment>;
  let sink: Pipeline | undefined;
  let api: SampleApi;

  /** The partition's end offset: the next event's. */
  const end = () => withAdmin(plainKafka(), async (admin) => Number((await admin.fetchTopicOffsets(env.config.topic))[0]!.high));
  /** What the retention does, now: deletes the partition's records before `offset`. */
  const expireBefore = (offset: number) => withAdmin(plainKafka(), async (admin) => {
    await admin.fetchTopicMetadata({ topics: [env.config.topic] }); // kafkajs's deleteTopicRecords needs it loaded
    await admin.deleteTopicRecords({ topic: env.config.topic, partitions: [{ partition: 0, offset: String(offset) }] });
  });
  /** Sets the integration's timeout in AWS and takes a snapshot, which carries it to the topic. */
  async function changeAndSnapshot(timeout: number): Promise<void> {
    await aws.send(new UpdateIntegrationCommand({ ApiId: api.apiId, IntegrationId: api.integrationIds[0], TimeoutInMillis: timeout }));
    const snapshotter = await env.open({ snapshot: true });
    await snapshotter.snapshotter!.runOnce();
    await snapshotter.close();
  }
  /** The sink's warnings of expired offsets, each as its partition and range. */
  const expiredWarnings = () => said.filter((line) => line.includes('retention deleted events the sink had not written'))
    .map((line) => (({ partition, fromOffset, toOffset, offsets }) => ({ partition, fromOffset, toOffset, offsets }))(JSON.parse(line) as Record<string, number>));
  const expiredCounted = async () => (await env.metrics.sinkOffsetsExpired.get()).values.reduce((n, v) => n + v.value, 0);
  /**
   * What each case comes to: one warning of offsets `from` to `upTo` - 1, counted as many since `countedBefore`, the
   * change after them applied and the `lost` one not in history (what the warning is for).
   */
  async function assertLost({ from, upTo, countedBefore, applied, lost }: { from: number; upTo: number; countedBefore: number; applied: number; lost: number }) {
    assert.deepEqual(expiredWarnings(), [{ partition: 0, fromOffset: from, toOffset: upTo - 1, offsets: upTo - from }], said.join('\n'));
    assert.equal(await expiredCounted() - countedBefore, upTo - from);
    const timeouts = await timeoutsInHistory();
    assert.equal(timeouts.at(-1), applied, 'the change after the deleted events is applied');
    assert.ok(!timeouts.includes(lost), 'the deleted change is not in history');
  }
  /** The integration's timeouts in history, oldest first. */
  const timeoutsInHistory = async () => (await rows<{ timeout: number }>(sink!,
    `SELECT JSONExtract(after, 'timeout_in_millis', 'Nullable(Int32)') AS timeout FROM ${env.table('aws_apigatewayv2_api_integrations_history')}
     WHERE arn = {arn:String} ORDER BY version`, { arn: `arn:aws:apigateway:${REGION}::/apis/${api.apiId}/integrations/${api.integrationIds[0]}` }))
    .map((row) => row.timeout);

  before(async () => {
    await resetEmulator(motoEndpoint);
    [api] = await seedSampleInventory(aws, { httpApis: 1, websocketApis: 0, prefix: 'expired' });
    // No write retries: the second test's failed write is the one that counts.
    env = testEnvironment({ region: REGION, partitions: 1, logLines: said, extra: { APIGW_SINK_WRITE_RETRIES: '0', LOG_LEVEL: 'info' } });
  });
  after(async () => {
    await sink?.close();
    await env?.cleanup();
  });

  it('a sink that was away says how many and from where as it starts, and applies what is left', async () => {
    const first = await env.open({ snapshot: true, sink: true });
    await first.snapshotter!.runOnce();
    await first.sink!.waitForCatchUp();
    await first.close();

    // While the sink is away: a change, then another; the retention deletes the first one's snapshot.
    const committed = await end();
    await changeAndSnapshot(3131);
    const expiredUpTo = await end();
    await changeAndSnapshot(4242);
    await expireBefore(expiredUpTo);

    said.length = 0;
    sink = await env.open({ sink: true });
    await sink.sink!.waitForCatchUp();
    await assertLost({ from: committed, upTo: expiredUpTo, countedBefore: 0, applied: 4242, lost: 3131 });
  });

  it('a running sink that could not write while the retention passed says so as it starts over', async () => {
    const counted = await expiredCounted();
    const written = await end();
    const history = env.table('aws_apigatewayv2_api_integrations_history');
    said.length = 0;
    await sink!.clickhouse!.command({ query: `DETACH TABLE ${history}` });
    let expiredUpTo: number;
    try {
      await changeAndSnapshot(5151);
      await waitFor('the write to fail', async () => ((await env.metrics.sinkWriteFailures.get()).values[0]?.value ?? 0) >= 1);
      expiredUpTo = await end();
      await expireBefore(expiredUpTo);
      await changeAndSnapshot(6161);
      // It starts over again and again (with backoff) while the table is away: it says so once.
      await waitFor('a start-over after the records were deleted', async () => expiredWarnings().length > 0, 60_000).catch((error: Error) => {
        throw new Error(`${error.message}; the sink said:\n${said.slice(-30).join('\n')}`);
      });
    } finally {
      await sink!.clickhouse!.command({ query: `ATTACH TABLE ${history}` });
    }
    await sink!.sink!.waitForCatchUp();
    await assertLost({ from: written, upTo: expiredUpTo, countedBefore: counted, applied: 6161, lost: 5151 });
  });

  it('a running sink the retention overtook while it stood still, its writes never failing, says so as it reads on', async () => {
    const counted = await expiredCounted();
    const next = await end();
    said.length = 0;
    await aws.send(new UpdateIntegrationCommand({ ApiId: api.apiId, IntegrationId: api.integrationIds[0], TimeoutInMillis: 7171 }));
    // This process, the sink's, stands still (a long pause, a stopped machine) while another takes a snapshot and
    // the retention deletes it. Its fetch in flight has answered, empty, by the time the snapshot begins.
    const stalled = spawnSync('bash', ['-c', `sleep 1 && node bin/apigw-stream.js snapshot --once && node --import tsx test/support/expire-topic.ts ${env.config.topic}`], {
      cwd: PROJECT_ROOT, env: { ...env.env, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', LOG_LEVEL: 'warn' }, encoding: 'utf8', timeout: 60_000,
    });
    assert.equal(stalled.status, 0, stalled.stderr);
    const expiredUpTo = await end();
    assert.ok(expiredUpTo > next, 'the snapshot was written, then deleted');
    await changeAndSnapshot(8181);
    await waitFor('the change after the deleted events', async () => (await timeoutsInHistory()).at(-1) === 8181);
    await assertLost({ from: next, upTo: expiredUpTo, countedBefore: counted, applied: 8181, lost: 7171 });
  });

  it('a sink says the topic\'s retention and its dead-letter topic\'s as it starts, and warns when the topic is compacted or dead letters expire', async () => {
    const deadLetterTopic = dlqTopic(env.config.topic);
    // Made by apigw-stream: dead letters are kept until someone deletes them.
    assert.equal((await withAdmin(plainKafka(), (admin) => topicSettings(admin, deadLetterTopic, ['retention.ms']))).get('retention.ms'), '-1');

    await sink!.close();
    sink = undefined;
    await withAdmin(plainKafka(), (admin) => admin.alterConfigs({
      validateOnly: false,
      resources: [
        { type: kafkajs.ConfigResourceTypes.TOPIC, name: env.config.topic, configEntries: [
          { name: 'cleanup.policy', value: 'compact,delete' }, { name: 'retention.ms', value: String(3 * 24 * 3600_000) },
        ] },
        { type: kafkajs.ConfigResourceTypes.TOPIC, name: deadLetterTopic, configEntries: [{ name: 'retention.ms', value: String(2 * 24 * 3600_000) }] },
      ],
    }));
    said.length = 0;
    sink = await env.open({ sink: true });
    const lines = said.map((line) => JSON.parse(line) as {
      level: number; msg: string; retentionHours?: number; deadLetterRetentionHours?: number; cleanupPolicy?: string; deadLetterTopic?: string;
    });
    const started = lines.filter((line) => line.msg === 'sink started');
    assert.deepEqual(started.map((line) => [line.retentionHours, line.deadLetterRetentionHours]), [[72, 48]]);
    const compacted = lines.filter((line) => line.msg.startsWith('the topic is compacted'));
    assert.deepEqual(compacted.map((line) => [line.level, line.cleanupPolicy]), [[40, 'compact,delete']], said.join('\n'));
    const expiring = lines.filter((line) => line.msg.startsWith('the dead-letter topic deletes dead letters after 48 hours'));
    assert.deepEqual(expiring.map((line) => [line.level, line.deadLetterTopic, line.retentionHours]), [[40, deadLetterTopic, 48]], said.join('\n'));
  });
});
