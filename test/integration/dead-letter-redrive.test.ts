import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { integrationArn, type ChangeSource, type IntegrationChange } from '../../services/shared/integration-model.js';
import { dlqTopic, withAdmin } from '../../services/shared/kafka.js';
import type { RedriveReport } from '../../services/sink/dead-letters.js';
import { cloudTrailSource, integrationChange, snapshotSource } from '../support/changes.js';
import { apigwStream, tailJson } from '../support/cli.js';
import { plainKafka, produce, rows, topicMessages, waitFor } from '../support/harness.js';
import { newerProducerCodec, sinkBehindRegistryProxy } from '../support/registry-proxy.js';

const REGION = 'eu-central-2';
const API = 'red1';

const PRINCIPAL = 'arn:aws:iam::123456789012:user/late';
const cloudTrail = cloudTrailSource('ct-late', PRINCIPAL);
const snapshot = snapshotSource('snap-old');

/** A change observed now of an integration changed a minute ago, written with the newer schema's field. */
function change(integrationId: string, source: ChangeSource): IntegrationChange & { change_reason: string } {
  const now = Date.now();
  return { ...integrationChange({ region: REGION, apiId: API, integrationId, source, eventTime: now - 60_000, observedAt: now, timeout: 2500 }), change_reason: 'ticket OPS-9' };
}

type Counts = [string, string, number][];
const countsOf = (report: RedriveReport): Counts => report.counts.map((c): [string, string, number] => [c.outcome, c.reason, c.messages]).sort();

describe('dead letters that decode later are sent back once, and what still fails stays', { timeout: 240_000 }, () => {
  // A registry replica that has not seen the newest schema yet: it answers 404 for that id while `lagging`.
  let lagging = false;
  let lateSchemaId = -1;
  const sink = sinkBehindRegistryProxy(REGION, (request) => (lagging && new RegExp(`/schemas/ids/${lateSchemaId}(/|\\?|$)`).test(request.url ?? '')
    ? { status: 404, headers: { 'Content-Type': 'application/json' }, body: '{"error_code":40403,"message":"Schema not found"}' }
    : 'forward'));

  const dlq = () => dlqTopic(sink.env.config.topic);
  const redrive = async (...args: string[]) => {
    const result = await apigwStream(['redrive', '--format', 'json', ...args], sink.env.env);
    return { ...result, report: JSON.parse(result.stdout) as RedriveReport & { dryRun: boolean } };
  };
  const lateHistory = () => rows<{ principal_arn: string; operation: string; timeout: number }>(sink.pipeline,
    `SELECT principal_arn, operation, JSONExtractInt(after, 'timeout_in_millis') AS timeout FROM ${sink.env.table('aws_apigatewayv2_api_integrations_history')} WHERE arn = {arn:String}`,
    { arn: integrationArn(REGION, API, 'i-late') });

  it('dead-letters events whose schema the registry does not know yet', async () => {
    // A producer of a newer version registered its schema (one more optional field) with the primary registry.
    const newer = newerProducerCodec(sink.env.config.topic);
    lateSchemaId = (await newer.register()).value;
    lagging = true;
    const late = change('i-late', cloudTrail);
    const old = change('i-snap', snapshot);
    await produce(sink.env.config.topic, [await newer.encode(late, late), await newer.encode(old, old), { key: 'not-avro', value: 'not avro either' }]);

    await waitFor('three dead letters', async () => (await topicMessages(dlq())).length === 3, 60_000);
    await sink.pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await lateHistory(), []);
  });

  it('a dry run says what a redrive would do, and sends nothing', async () => {
    lagging = false;
    const { status, stderr, report } = await redrive('--dry-run');
    assert.equal(status, 1, 'one dead letter still fails');
    assert.equal(report.dryRun, true);
    assert.equal(report.read, 3);
    assert.deepEqual(countsOf(report), [['left to the next read', 'snapshot read', 1], ['sent back', 'change', 1], ['still failing', 'undecodable', 1]]);
    assert.match(stderr, /dry run: nothing was sent/);
    assert.equal((await topicMessages(dlq())).length, 3);
    assert.equal((await topicMessages(sink.env.config.topic)).length, 3);
  });

  it('sends the listener\'s change back, which the sink applies with who made it; dead-letters again what still fails', async () => {
    const redriveStarted = new Date().toISOString();
    const { status, report } = await redrive();
    assert.equal(status, 1, 'one dead letter still fails');
    assert.equal(report.read, 3);
    assert.deepEqual(countsOf(report), [['left to the next read', 'snapshot read', 1], ['sent back', 'change', 1], ['still failing', 'undecodable', 1]]);

    const history = await waitFor('the change applied', async () => {
      const found = await lateHistory();
      return found.length > 0 && found;
    });
    assert.deepEqual(history, [{ principal_arn: PRINCIPAL, operation: 'CREATE', timeout: 2500 }]);
    const [{ live }] = await rows<{ live: string }>(sink.pipeline,
      `SELECT count() AS live FROM ${sink.env.table('aws_apigatewayv2_api_integrations')} FINAL WHERE is_deleted = 0`) as [{ live: string }];
    assert.equal(Number(live), 1, 'the old snapshot\'s event is not applied');

    const letters = await topicMessages(dlq());
    const sentBack = (await topicMessages(sink.env.config.topic)).filter((m) => m.headers['redrive.from']);
    const letterOffset = letters.findIndex((m) => m.value.equals(sentBack[0]!.value));
    assert.deepEqual(sentBack.map((m) => m.headers['redrive.from']), [`${dlq()}/0/${letterOffset}`], 'the same bytes, saying which dead letter they were');
    const dlqHeaders = Object.entries(sentBack[0]!.headers).filter(([name]) => name.startsWith('dlq.'));
    assert.deepEqual(dlqHeaders, [['dlq.redrive-attempts', '1']], 'without why it failed, with the count a dead letter made of it again would go on from');
    const origin = (m: (typeof letters)[number]) => [m.headers['dlq.topic'], m.headers['dlq.partition'], m.headers['dlq.offset']];
    const first = letters.find((m) => m.key.toString() === 'not-avro')!;
    assert.deepEqual(letters.slice(3).map((m) => [m.key.toString(), m.headers['dlq.reason'], m.headers['dlq.redrive-attempts'], ...origin(m)]),
      [['not-avro', 'undecodable', '1', ...origin(first)]], 'dead-lettered again with where it first came from');

    const [shown] = await tailJson<{ reason: string; redrive_attempts: number }>(['--dead-letters', '--since', redriveStarted], sink.env.env, 1);
    assert.deepEqual(shown, { ...shown, reason: 'undecodable', redrive_attempts: 1 }, 'tail --since starts at the dead letter written again');
  });

  it('the next redrive goes on from where the last stopped', async () => {
    const { status, report } = await redrive();
    assert.equal(status, 1);
    assert.equal(report.read, 1);
    assert.deepEqual(countsOf(report), [['still failing', 'undecodable', 1]]);
    assert.deepEqual((await topicMessages(dlq())).map((m) => m.headers['dlq.redrive-attempts'] ?? null), [null, null, null, '1', '2']);
  });

  it('a change sent back twice (a redrive stopped before it committed) makes one history row', async () => {
    await withAdmin(plainKafka(), (admin) => admin.setOffsets({ groupId: `${sink.env.config.sinkGroupId}.redrive`, topic: dlq(), partitions: [{ partition: 0, offset: '0' }] }));
    const { report } = await redrive();
    assert.equal(report.read, 5);
    assert.deepEqual(countsOf(report), [['left to the next read', 'snapshot read', 1], ['sent back', 'change', 1], ['still failing', 'undecodable', 3]]);
    await waitFor('the change sent back again', async () => (await topicMessages(sink.env.config.topic)).filter((m) => m.headers['redrive.from']).length === 2);
    await sink.pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await lateHistory(), [{ principal_arn: PRINCIPAL, operation: 'CREATE', timeout: 2500 }]);
  });

  it('goes through a backlog larger than the broker takes in one send', async () => {
    // One record batch of 12,000 small dead letters, which a fetch brings whole: dead-lettered again, each with its
    // error, they are more than the broker's 1 MiB a send.
    await produce(dlq(), Array.from({ length: 12_000 }, (_, i) => ({ key: `bulk-${i}`, value: 'x', headers: { 'dlq.reason': 'undecodable' } })));
    const before = (await topicMessages(dlq())).length;

    const { status, report } = await redrive();
    assert.equal(status, 1);
    // With the three the last redrive dead-lettered again.
    assert.deepEqual(countsOf(report), [['still failing', 'undecodable', 12_003]]);
    assert.equal((await topicMessages(dlq())).length, before + 12_003, 'every one dead-lettered again');
  });

  it('reports the dead letters the retention deleted before it read them, once', async () => {
    const groupId = `${sink.env.config.sinkGroupId}.redrive`;
    await produce(dlq(), ['gone-1', 'gone-2', 'kept'].map((key) => ({ key, value: 'x', headers: { 'dlq.reason': 'undecodable' } })));
    const { position, deletedUpTo } = await withAdmin(plainKafka(), async (admin) => {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [dlq()] });
      const end = Number((await admin.fetchTopicOffsets(dlq()))[0]!.high);
      await admin.fetchTopicMetadata({ topics: [dlq()] }); // kafkajs's deleteTopicRecords needs it loaded
      // The retention takes everything before 'kept': the letters the last redrive wrote again, and the two above.
      await admin.deleteTopicRecords({ topic: dlq(), partitions: [{ partition: 0, offset: String(end - 1) }] });
      return { position: Number(committed!.partitions[0]!.offset), deletedUpTo: end - 1 };
    });

    const { status, report, stderr } = await redrive();
    assert.equal(status, 1, 'dead letters were lost');
    assert.deepEqual(countsOf(report), [['expired', 'retention', deletedUpTo - position], ['still failing', 'undecodable', 1]]);
    assert.match(stderr, /retention before a redrive read them/);
    const again = await redrive();
    assert.deepEqual(countsOf(again.report), [['still failing', 'undecodable', 1]], 'said once: the redrive moved past them');
  });

  it('stops with one line while another redrive holds the position', async () => {
    const holder = plainKafka().consumer({ groupId: `${sink.env.config.sinkGroupId}.redrive` });
    await holder.connect();
    await holder.subscribe({ topic: dlq() });
    let joined!: () => void;
    const member = new Promise<void>((resolve) => { joined = resolve; });
    holder.on(holder.events.GROUP_JOIN, () => joined());
    await holder.run({ autoCommit: false, eachMessage: async () => undefined });
    await member;
    try {
      // Something to redrive: with nothing, there is no position to hold.
      await produce(dlq(), [{ key: 'held', value: 'x' }]);
      const result = await apigwStream(['redrive'], sink.env.env);
      assert.equal(result.status, 1);
      assert.equal(result.stderr.split('\n').length, 1, result.stderr);
      assert.match(result.stderr, /another redrive of .*\.dlq is running/);
    } finally {
      await holder.disconnect();
    }
  });

  it('stops with one line when the topic has no dead-letter topic', async () => {
    const result = await apigwStream(['redrive'], { ...sink.env.env, APIGW_TOPIC: `${sink.env.config.topic}.none` });
    assert.equal(result.status, 3);
    assert.equal(result.stderr.split('\n').length, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`APIGW_TOPIC: no topic ${sink.env.config.topic}\\.none\\.dlq`));
  });
});
